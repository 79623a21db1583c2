use super::*;

const CERT: &str = "arn:aws:iot:us-east-1:111122223333:cert/abc";
const OTHER_CERT: &str = "arn:aws:iot:us-east-1:111122223333:cert/def";

fn doc(text: &str) -> PolicyDocument {
    match PolicyDocument::parse(text) {
        Ok(d) => d,
        Err(e) => panic!("{text} should parse: {e}"),
    }
}

fn cx() -> Context {
    Context {
        username: Some("alice".into()),
        account: Some("111122223333".into()),
        principal_arn: Some("arn:aws:iam::111122223333:user/alice".into()),
        source_ip: "10.1.2.3".parse().ok(),
        secure_transport: Some(false),
    }
}

#[test]
fn evaluation_table() {
    use Decision::*;
    let cases: &[(&str, &str, &str, Decision)] = &[
        // (documents joined by |, action, resource, expected)
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:DescribeCertificate","Resource":"*"}}"#,
            "iot:DescribeCertificate",
            CERT,
            Allow,
        ),
        // Actions compare case-insensitively.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"IOT:describecertificate","Resource":"*"}}"#,
            "iot:DescribeCertificate",
            CERT,
            Allow,
        ),
        // Resources compare case-sensitively.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:us-east-1:111122223333:CERT/abc"}}"#,
            "iot:DescribeCertificate",
            CERT,
            ImplicitDeny,
        ),
        // No statement about the action: deny.
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:ListCertificates","Resource":"*"}]}"#,
            "iot:DescribeCertificate",
            CERT,
            ImplicitDeny,
        ),
        // Wildcards in actions: * and ?.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Describe*","Resource":"*"}}"#,
            "iot:DescribeCertificate",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Describe?ertificate","Resource":"*"}}"#,
            "iot:DescribeCertificate",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:List*","Resource":"*"}}"#,
            "iot:DescribeCertificate",
            CERT,
            ImplicitDeny,
        ),
        // Explicit Deny wins, also across documents.
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iot:CancelCertificateTransfer","Resource":"*"}]}"#,
            "iot:CancelCertificateTransfer",
            CERT,
            ExplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}|{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":"arn:aws:iot:*:*:cert/abc"}}"#,
            "iot:UpdateCertificate",
            CERT,
            ExplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}|{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":"arn:aws:iot:*:*:cert/abc"}}"#,
            "iot:UpdateCertificate",
            OTHER_CERT,
            Allow,
        ),
        // A resource-scoped Allow.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:CancelCertificateTransfer","Resource":["arn:aws:iot:us-east-1:111122223333:cert/abc"]}}"#,
            "iot:CancelCertificateTransfer",
            OTHER_CERT,
            ImplicitDeny,
        ),
        // NotAction / NotResource.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iot:Delete*","Resource":"*"}}"#,
            "iot:DeleteCertificate",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iot:Delete*","Resource":"*"}}"#,
            "iot:UpdateCertificate",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:iot:*:*:cert/abc"}}"#,
            "iot:UpdateCertificate",
            CERT,
            ImplicitDeny,
        ),
        // Conditions.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":"ALICE"}}}}"#,
            "iot:ListCertificates",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIgnoreCase":{"AWS:UserName":"ALICE"}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:username":"al*"},"StringNotEquals":{"aws:PrincipalAccount":"444455556666"}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotLike":{"aws:username":"al*"}}}}"#,
            "iot:ListCertificates",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/a*"}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}}}"#,
            "iot:ListCertificates",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","10.0.0.0/8"]}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        (
            r#"{"Version":"1","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"192.0.2.0/24"}}}}"#,
            "iot:ListCertificates",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}]}"#,
            "iot:ListCertificates",
            CERT,
            ExplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            "iot:ListCertificates",
            CERT,
            ExplicitDeny,
        ),
        // A key the request does not carry: positive operators fail, IfExists holds.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/env":"prod"}}}}"#,
            "iot:ListCertificates",
            CERT,
            ImplicitDeny,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:RequestTag/env":"prod"}}}}"#,
            "iot:ListCertificates",
            CERT,
            Allow,
        ),
        // ARM operation names, with wildcards.
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"Microsoft.Billing/*/read","Resource":"/providers/Microsoft.Billing/*"}}"#,
            "Microsoft.Billing/transfers/read",
            "/providers/Microsoft.Billing/transfers/t1",
            Allow,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"Microsoft.Billing/*/read","Resource":"*"}}"#,
            "Microsoft.Billing/transfers/accept/action",
            "/providers/Microsoft.Billing/transfers/t1",
            ImplicitDeny,
        ),
        // Other clouds' names.
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["yundun-cert:Describe*","mq:UnregisterDeviceCertificate"],"Resource":"acs:mq:*:1234567890123456:*"}]}"#,
            "mq:UnregisterDeviceCertificate",
            "acs:mq:*:1234567890123456:post-cn-abc",
            Allow,
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["mq:UnregisterDeviceCertificate"],"Resource":"acs:mq:*:1234567890123456:*"}]}"#,
            "mq:InactivateDeviceCertificate",
            "acs:mq:*:1234567890123456:post-cn-abc",
            ImplicitDeny,
        ),
    ];
    for (docs, action, resource, want) in cases {
        let parsed: Vec<PolicyDocument> = docs.split('|').map(doc).collect();
        let got = evaluate(&parsed, action, resource, &cx());
        assert_eq!(got, *want, "{docs} / {action} on {resource}");
    }
}

#[test]
fn no_documents_deny() {
    assert_eq!(
        evaluate(&[], "iot:ListCertificates", "*", &cx()),
        Decision::ImplicitDeny
    );
}

#[test]
fn invalid_documents_are_refused_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            "Version",
        ),
        (
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            "Version",
        ),
        (r#"{"Version":"2012-10-17"}"#, "Statement"),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "empty"),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
            "Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
            "Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
            "not both",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*"}}"#,
            "Resource",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"DescribeCertificate","Resource":"*"}}"#,
            "service:Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"Billing/transfers","Resource":"*"}}"#,
            "ARM operation",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
            "empty",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}}"#,
            "Principal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}}"#,
            "not supported",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
            "CIDR",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
            "true or false",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}}"#,
            "unknown statement field",
        ),
    ];
    for (text, reason) in cases {
        match PolicyDocument::parse(text) {
            Err(DomainError::MalformedDocument(m)) => {
                assert!(
                    m.contains(reason),
                    "{text}: {m:?} should mention {reason:?}"
                )
            }
            other => panic!("{text} should be refused, got {other:?}"),
        }
    }
    let long = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*","Resource":"{}"}}}}"#,
        "a".repeat(MAX_DOCUMENT_CHARS)
    );
    assert!(PolicyDocument::parse(&long).is_err());
}

#[test]
fn wildcards() {
    for (p, t, want) in [
        ("*", "", true),
        ("*", "anything", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*cert/*", "arn:aws:iot:r:1:cert/x", true),
        ("**b", "ab", true),
        ("a*b*c", "a-b-x-c", true),
        ("a*b*c", "a-c-b", false),
        ("", "", true),
        ("", "x", false),
        // `?` is one character, also where a character is several bytes.
        ("caf?", "café", true),
        ("caf??", "café", false),
        ("*é*", "xéy", true),
        ("A*", "a", false),
    ] {
        assert_eq!(wildcard_match(p, t), want, "{p:?} ~ {t:?}");
    }
    for (p, t, want) in [
        ("iot:describe*", "iot:DescribeCertificate", true),
        ("IOT:?ESCRIBECERTIFICATE", "iot:describecertificate", true),
        ("iot:List*", "iot:DescribeCertificate", false),
        ("ÉTÉ*", "été-x", true),
    ] {
        assert_eq!(wildcard_match_ignore_case(p, t), want, "{p:?} ~ {t:?}");
    }
}

/// A pattern's shortcut (`*`, a literal, a literal then `*`) answers what the glob answers,
/// with and without case, ASCII or not.
#[test]
fn compiled_patterns_agree_with_the_glob() {
    let patterns = [
        "*",
        "",
        "iot:DescribeCertificate",
        "iot:describe*",
        "iot:*",
        "iot:List*",
        "IOT:DESCRIBECERTIFICATE",
        "a*c",
        "a?c",
        "*cert/*",
        "ÉTÉ*",
        "caf?",
        "café",
        "k*",
        "arn:aws:iot:us-east-1:123456789012:cert/*",
        "iot:Describe",
        "**",
    ];
    let texts = [
        "",
        "x",
        "iot:DescribeCertificate",
        "iot:describecertificate",
        "IOT:LISTTHINGS",
        "iot:Describe",
        "abc",
        "abbbc",
        "été-x",
        "ÉTÉ-X",
        "café",
        "cafe",
        "\u{212A}elvin",
        "arn:aws:iot:us-east-1:123456789012:cert/abc",
        "iot:DescribeCertificateX",
        "é",
    ];
    for p in patterns {
        let compiled = Pattern::new(p.to_string());
        for t in texts {
            assert_eq!(
                compiled.matches(t, false),
                wildcard_match(p, t),
                "{p:?} ~ {t:?}"
            );
            assert_eq!(
                compiled.matches(t, true),
                wildcard_match_ignore_case(p, t),
                "{p:?} ~ {t:?} ignoring case"
            );
        }
    }
}

#[test]
fn ipv6_and_mapped_addresses() {
    let d = doc(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["2001:db8::/32","127.0.0.1"]}}}}"#,
    );
    let with_ip = |ip: &str| Context {
        source_ip: ip.parse().ok(),
        ..Context::default()
    };
    for (ip, want) in [
        ("2001:db8::1", Decision::Allow),
        ("2001:db9::1", Decision::ImplicitDeny),
        ("::ffff:127.0.0.1", Decision::Allow),
        ("127.0.0.2", Decision::ImplicitDeny),
    ] {
        assert_eq!(evaluate([&d], "iot:X", "*", &with_ip(ip)), want, "{ip}");
    }
}
