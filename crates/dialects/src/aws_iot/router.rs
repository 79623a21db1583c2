//! `(method, path segments)` → the AWS IoT operation. One closed enum, variants named exactly as
//! AWS names the operations; each also names its authorization action.

use super::other_operations::OTHER_OPERATIONS;

macro_rules! endpoints {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint { $($name),* }

        impl Endpoint {
            pub const ALL: &'static [Endpoint] = &[$(Endpoint::$name),*];

            /// The operation name as AWS spells it.
            pub fn name(self) -> &'static str {
                match self { $(Endpoint::$name => stringify!($name)),* }
            }

            /// The IAM action this operation is authorized as.
            pub fn action(self) -> &'static str {
                match self { $(Endpoint::$name => concat!("iot:", stringify!($name))),* }
            }
        }
    };
}

endpoints! {
    CreateKeysAndCertificate,
    CreateCertificateFromCsr,
    RegisterCertificate,
    RegisterCertificateWithoutCA,
    GetRegistrationCode,
    DeleteRegistrationCode,
    RegisterCACertificate,
    DescribeCACertificate,
    ListCACertificates,
    UpdateCACertificate,
    DeleteCACertificate,
    DescribeCertificate,
    ListCertificates,
    ListCertificatesByCA,
    UpdateCertificate,
    DeleteCertificate,
    TransferCertificate,
    AcceptCertificateTransfer,
    RejectCertificateTransfer,
    CancelCertificateTransfer,
    ListOutgoingCertificates,
    CreateThing,
    DescribeThing,
    DeleteThing,
    ListThings,
    CreatePolicy,
    GetPolicy,
    DeletePolicy,
    ListPolicies,
    AttachPolicy,
    DetachPolicy,
    ListAttachedPolicies,
    ListTargetsForPolicy,
    AttachThingPrincipal,
    DetachThingPrincipal,
    ListPrincipalThings,
    ListThingPrincipals,
    AttachPrincipalPolicy,
    DetachPrincipalPolicy,
    ListPrincipalPolicies,
    ListPolicyPrincipals,
    CreatePolicyVersion,
    GetPolicyVersion,
    ListPolicyVersions,
    SetDefaultPolicyVersion,
    DeletePolicyVersion,
    UpdateThing,
    CreateThingType,
    DescribeThingType,
    ListThingTypes,
    UpdateThingType,
    DeprecateThingType,
    DeleteThingType,
    CreateThingGroup,
    DescribeThingGroup,
    ListThingGroups,
    UpdateThingGroup,
    DeleteThingGroup,
    AddThingToThingGroup,
    RemoveThingFromThingGroup,
    ListThingsInThingGroup,
    ListThingGroupsForThing,
    UpdateThingGroupsForThing,
    CreateBillingGroup,
    DescribeBillingGroup,
    ListBillingGroups,
    UpdateBillingGroup,
    DeleteBillingGroup,
    AddThingToBillingGroup,
    RemoveThingFromBillingGroup,
    ListThingsInBillingGroup,
    TagResource,
    UntagResource,
    ListTagsForResource,
    CreateProvisioningTemplate,
    DescribeProvisioningTemplate,
    ListProvisioningTemplates,
    UpdateProvisioningTemplate,
    DeleteProvisioningTemplate,
    CreateProvisioningTemplateVersion,
    DescribeProvisioningTemplateVersion,
    ListProvisioningTemplateVersions,
    DeleteProvisioningTemplateVersion,
    RegisterThing,
    ListThingPrincipalsV2,
    ListPrincipalThingsV2,
    DescribeEndpoint,
}

impl Endpoint {
    /// The ARN resource type its path label names (`cert` for `cert/<id>`), for the resource
    /// the operation is authorized on. Exhaustive so that a new operation must be classified.
    pub fn resource_type(self) -> Option<&'static str> {
        use Endpoint::*;
        match self {
            DescribeCertificate
            | UpdateCertificate
            | DeleteCertificate
            | TransferCertificate
            | AcceptCertificateTransfer
            | RejectCertificateTransfer
            | CancelCertificateTransfer => Some("cert"),
            DescribeCACertificate
            | UpdateCACertificate
            | DeleteCACertificate
            | ListCertificatesByCA => Some("cacert"),
            CreateThing
            | DescribeThing
            | DeleteThing
            | UpdateThing
            | AttachThingPrincipal
            | DetachThingPrincipal
            | ListThingPrincipals
            | ListThingGroupsForThing
            | ListThingPrincipalsV2 => Some("thing"),
            DescribeProvisioningTemplate
            | UpdateProvisioningTemplate
            | DeleteProvisioningTemplate
            | CreateProvisioningTemplateVersion
            | DescribeProvisioningTemplateVersion
            | ListProvisioningTemplateVersions
            | DeleteProvisioningTemplateVersion => Some("provisioningtemplate"),
            CreateThingType | DescribeThingType | UpdateThingType | DeprecateThingType
            | DeleteThingType => Some("thingtype"),
            CreateThingGroup
            | DescribeThingGroup
            | UpdateThingGroup
            | DeleteThingGroup
            | ListThingsInThingGroup => Some("thinggroup"),
            CreateBillingGroup
            | DescribeBillingGroup
            | UpdateBillingGroup
            | DeleteBillingGroup
            | ListThingsInBillingGroup => Some("billinggroup"),
            CreatePolicy
            | GetPolicy
            | DeletePolicy
            | AttachPolicy
            | DetachPolicy
            | ListTargetsForPolicy
            | AttachPrincipalPolicy
            | DetachPrincipalPolicy
            | CreatePolicyVersion
            | GetPolicyVersion
            | ListPolicyVersions
            | SetDefaultPolicyVersion
            | DeletePolicyVersion => Some("policy"),
            // No path label, or (ListAttachedPolicies) a label that is itself a target ARN.
            CreateKeysAndCertificate
            | CreateCertificateFromCsr
            | RegisterCertificate
            | RegisterCertificateWithoutCA
            | GetRegistrationCode
            | DeleteRegistrationCode
            | RegisterCACertificate
            | ListCACertificates
            | ListCertificates
            | ListOutgoingCertificates
            | ListThings
            | ListPolicies
            | ListAttachedPolicies
            | ListPrincipalThings
            | ListPrincipalPolicies
            | ListPolicyPrincipals
            | ListThingTypes
            | ListThingGroups
            | AddThingToThingGroup
            | RemoveThingFromThingGroup
            | UpdateThingGroupsForThing
            | ListBillingGroups
            | AddThingToBillingGroup
            | RemoveThingFromBillingGroup
            | TagResource
            | UntagResource
            | ListTagsForResource
            | CreateProvisioningTemplate
            | ListProvisioningTemplates
            | RegisterThing
            | ListPrincipalThingsV2
            | DescribeEndpoint => None,
        }
    }

    /// The resource an operation is authorized on: the ARN of what its path names
    /// (`arn:aws:iot:us-east-1:111122223333:cert/<id>`), a target ARN given as the label, or
    /// the account's `arn:aws:iot:<region>:<account>:*` for operations on no one resource.
    pub fn resource_arn(self, region: &str, account: &str, label: Option<&str>) -> String {
        match (self.resource_type(), label) {
            (Some(t), Some(l)) => format!("arn:aws:iot:{region}:{account}:{t}/{l}"),
            (None, Some(l)) if l.starts_with("arn:") => l.to_string(),
            _ => format!("arn:aws:iot:{region}:{account}:*"),
        }
    }
}

/// A routed request: the operation, its first path label, if it has one, and its second (a
/// policy version id), if it has two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub label: Option<String>,
    pub sub: Option<String>,
}

pub fn route(method: &str, segs: &[String]) -> Option<Route> {
    use Endpoint::*;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let two = |endpoint: Endpoint, label: &str, sub: &str| Route {
        endpoint,
        label: Some(label.to_string()),
        sub: Some(sub.to_string()),
    };
    match (method, s.as_slice()) {
        ("GET", ["policies", name, "version", v]) => return Some(two(GetPolicyVersion, name, v)),
        ("PATCH", ["policies", name, "version", v]) => {
            return Some(two(SetDefaultPolicyVersion, name, v))
        }
        ("DELETE", ["policies", name, "version", v]) => {
            return Some(two(DeletePolicyVersion, name, v))
        }
        ("GET", ["provisioning-templates", name, "versions", v]) => {
            return Some(two(DescribeProvisioningTemplateVersion, name, v))
        }
        ("DELETE", ["provisioning-templates", name, "versions", v]) => {
            return Some(two(DeleteProvisioningTemplateVersion, name, v))
        }
        _ => {}
    }
    let (endpoint, label) = match (method, s.as_slice()) {
        ("POST", ["keys-and-certificate"]) => (CreateKeysAndCertificate, None),
        ("POST", ["certificates"]) => (CreateCertificateFromCsr, None),
        ("GET", ["certificates"]) => (ListCertificates, None),
        ("POST", ["certificate", "register"]) => (RegisterCertificate, None),
        ("POST", ["certificate", "register-no-ca"]) => (RegisterCertificateWithoutCA, None),
        ("GET", ["registrationcode"]) => (GetRegistrationCode, None),
        ("DELETE", ["registrationcode"]) => (DeleteRegistrationCode, None),
        ("POST", ["cacertificate"]) => (RegisterCACertificate, None),
        ("GET", ["cacertificate", id]) => (DescribeCACertificate, Some(*id)),
        ("PUT", ["cacertificate", id]) => (UpdateCACertificate, Some(*id)),
        ("DELETE", ["cacertificate", id]) => (DeleteCACertificate, Some(*id)),
        ("GET", ["cacertificates"]) => (ListCACertificates, None),
        ("GET", ["certificates", id]) => (DescribeCertificate, Some(*id)),
        ("PUT", ["certificates", id]) => (UpdateCertificate, Some(*id)),
        ("DELETE", ["certificates", id]) => (DeleteCertificate, Some(*id)),
        ("GET", ["certificates-by-ca", id]) => (ListCertificatesByCA, Some(*id)),
        ("PATCH", ["transfer-certificate", id]) => (TransferCertificate, Some(*id)),
        ("PATCH", ["accept-certificate-transfer", id]) => (AcceptCertificateTransfer, Some(*id)),
        ("PATCH", ["reject-certificate-transfer", id]) => (RejectCertificateTransfer, Some(*id)),
        ("PATCH", ["cancel-certificate-transfer", id]) => (CancelCertificateTransfer, Some(*id)),
        ("GET", ["certificates-out-going"]) => (ListOutgoingCertificates, None),
        ("GET", ["things"]) => (ListThings, None),
        ("POST", ["things", name]) => (CreateThing, Some(*name)),
        ("GET", ["things", name]) => (DescribeThing, Some(*name)),
        ("DELETE", ["things", name]) => (DeleteThing, Some(*name)),
        ("PATCH", ["things", name]) => (UpdateThing, Some(*name)),
        ("GET", ["thing-types"]) => (ListThingTypes, None),
        ("POST", ["thing-types", name]) => (CreateThingType, Some(*name)),
        ("GET", ["thing-types", name]) => (DescribeThingType, Some(*name)),
        ("PATCH", ["thing-types", name]) => (UpdateThingType, Some(*name)),
        ("DELETE", ["thing-types", name]) => (DeleteThingType, Some(*name)),
        ("POST", ["thing-types", name, "deprecate"]) => (DeprecateThingType, Some(*name)),
        ("PUT", ["thing-groups", "addThingToThingGroup"]) => (AddThingToThingGroup, None),
        ("PUT", ["thing-groups", "removeThingFromThingGroup"]) => (RemoveThingFromThingGroup, None),
        ("PUT", ["thing-groups", "updateThingGroupsForThing"]) => (UpdateThingGroupsForThing, None),
        ("GET", ["thing-groups"]) => (ListThingGroups, None),
        ("PUT", ["billing-groups", "addThingToBillingGroup"]) => (AddThingToBillingGroup, None),
        ("PUT", ["billing-groups", "removeThingFromBillingGroup"]) => {
            (RemoveThingFromBillingGroup, None)
        }
        ("GET", ["billing-groups"]) => (ListBillingGroups, None),
        ("POST", ["tags"]) => (TagResource, None),
        ("GET", ["tags"]) => (ListTagsForResource, None),
        ("POST", ["untag"]) => (UntagResource, None),
        ("POST", ["billing-groups", name]) => (CreateBillingGroup, Some(*name)),
        ("GET", ["billing-groups", name]) => (DescribeBillingGroup, Some(*name)),
        ("PATCH", ["billing-groups", name]) => (UpdateBillingGroup, Some(*name)),
        ("DELETE", ["billing-groups", name]) => (DeleteBillingGroup, Some(*name)),
        ("GET", ["billing-groups", name, "things"]) => (ListThingsInBillingGroup, Some(*name)),
        ("POST", ["thing-groups", name]) => (CreateThingGroup, Some(*name)),
        ("GET", ["thing-groups", name]) => (DescribeThingGroup, Some(*name)),
        ("PATCH", ["thing-groups", name]) => (UpdateThingGroup, Some(*name)),
        ("DELETE", ["thing-groups", name]) => (DeleteThingGroup, Some(*name)),
        ("GET", ["thing-groups", name, "things"]) => (ListThingsInThingGroup, Some(*name)),
        ("GET", ["things", name, "thing-groups"]) => (ListThingGroupsForThing, Some(*name)),
        ("PUT", ["things", name, "principals"]) => (AttachThingPrincipal, Some(*name)),
        ("DELETE", ["things", name, "principals"]) => (DetachThingPrincipal, Some(*name)),
        ("GET", ["things", name, "principals"]) => (ListThingPrincipals, Some(*name)),
        ("GET", ["principals", "things"]) => (ListPrincipalThings, None),
        ("GET", ["endpoint"]) => (DescribeEndpoint, None),
        ("POST", ["things"]) => (RegisterThing, None),
        ("GET", ["things", name, "principals-v2"]) => (ListThingPrincipalsV2, Some(*name)),
        ("GET", ["principals", "things-v2"]) => (ListPrincipalThingsV2, None),
        ("POST", ["provisioning-templates"]) => (CreateProvisioningTemplate, None),
        ("GET", ["provisioning-templates"]) => (ListProvisioningTemplates, None),
        ("GET", ["provisioning-templates", name]) => (DescribeProvisioningTemplate, Some(*name)),
        ("PATCH", ["provisioning-templates", name]) => (UpdateProvisioningTemplate, Some(*name)),
        ("DELETE", ["provisioning-templates", name]) => (DeleteProvisioningTemplate, Some(*name)),
        ("POST", ["provisioning-templates", name, "versions"]) => {
            (CreateProvisioningTemplateVersion, Some(*name))
        }
        ("GET", ["provisioning-templates", name, "versions"]) => {
            (ListProvisioningTemplateVersions, Some(*name))
        }
        ("GET", ["policies"]) => (ListPolicies, None),
        ("POST", ["policies", name]) => (CreatePolicy, Some(*name)),
        ("GET", ["policies", name]) => (GetPolicy, Some(*name)),
        ("DELETE", ["policies", name]) => (DeletePolicy, Some(*name)),
        ("POST", ["policies", name, "version"]) => (CreatePolicyVersion, Some(*name)),
        ("GET", ["policies", name, "version"]) => (ListPolicyVersions, Some(*name)),
        ("PUT", ["target-policies", name]) => (AttachPolicy, Some(*name)),
        ("POST", ["target-policies", name]) => (DetachPolicy, Some(*name)),
        ("POST", ["attached-policies", target]) => (ListAttachedPolicies, Some(*target)),
        ("POST", ["policy-targets", name]) => (ListTargetsForPolicy, Some(*name)),
        ("PUT", ["principal-policies", name]) => (AttachPrincipalPolicy, Some(*name)),
        ("DELETE", ["principal-policies", name]) => (DetachPrincipalPolicy, Some(*name)),
        ("GET", ["principal-policies"]) => (ListPrincipalPolicies, None),
        ("GET", ["policy-principals"]) => (ListPolicyPrincipals, None),
        _ => return None,
    };
    Some(Route {
        endpoint,
        label: label.map(str::to_string),
        sub: None,
    })
}

/// The name of an AWS IoT operation certplane does not implement, if the request is one.
pub fn other_operation(method: &str, segs: &[String]) -> Option<&'static str> {
    OTHER_OPERATIONS.iter().find_map(|(m, uri, name)| {
        if *m != method {
            return None;
        }
        let pattern: Vec<&str> = uri
            .trim_start_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let greedy = pattern.last().is_some_and(|p| p.ends_with("+}"));
        let fits = if greedy {
            segs.len() >= pattern.len()
        } else {
            segs.len() == pattern.len()
        };
        let same = fits
            && pattern
                .iter()
                .zip(segs)
                .all(|(p, s)| p.starts_with('{') || *p == s.as_str());
        same.then_some(*name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn operations_are_authorized_on_the_arn_they_touch() {
        let arn = |method: &str, path: &str| {
            let r = route(method, &segs(path)).expect("routes");
            r.endpoint
                .resource_arn("us-east-1", "111122223333", r.label.as_deref())
        };
        let base = "arn:aws:iot:us-east-1:111122223333";
        for (method, path, want) in [
            ("GET", "/certificates/abc", format!("{base}:cert/abc")),
            (
                "PATCH",
                "/cancel-certificate-transfer/abc",
                format!("{base}:cert/abc"),
            ),
            ("PUT", "/cacertificate/ca1", format!("{base}:cacert/ca1")),
            ("GET", "/things/t1/principals", format!("{base}:thing/t1")),
            ("POST", "/policies/p/version", format!("{base}:policy/p")),
            ("GET", "/policies/p/version/2", format!("{base}:policy/p")),
            ("GET", "/thing-groups/g", format!("{base}:thinggroup/g")),
            ("DELETE", "/thing-types/tt", format!("{base}:thingtype/tt")),
            ("GET", "/billing-groups/b", format!("{base}:billinggroup/b")),
            ("GET", "/certificates", format!("{base}:*")),
        ] {
            assert_eq!(arn(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn documented_request_lines_route_to_their_operation() {
        let id = "a".repeat(64);
        let cases = [
            (
                "PATCH",
                format!("/cancel-certificate-transfer/{id}"),
                Endpoint::CancelCertificateTransfer,
            ),
            (
                "PATCH",
                format!("/transfer-certificate/{id}"),
                Endpoint::TransferCertificate,
            ),
            (
                "GET",
                "/certificates".to_string(),
                Endpoint::ListCertificates,
            ),
            (
                "POST",
                "/certificates".to_string(),
                Endpoint::CreateCertificateFromCsr,
            ),
            (
                "PUT",
                "/target-policies/pol".to_string(),
                Endpoint::AttachPolicy,
            ),
            (
                "POST",
                "/target-policies/pol".to_string(),
                Endpoint::DetachPolicy,
            ),
            (
                "GET",
                "/cacertificates".to_string(),
                Endpoint::ListCACertificates,
            ),
            (
                "POST",
                "/cacertificate".to_string(),
                Endpoint::RegisterCACertificate,
            ),
            (
                "DELETE",
                "/registrationcode".to_string(),
                Endpoint::DeleteRegistrationCode,
            ),
            (
                "GET",
                "/things/t1/principals".to_string(),
                Endpoint::ListThingPrincipals,
            ),
            (
                "POST",
                "/policies/p/version".to_string(),
                Endpoint::CreatePolicyVersion,
            ),
            (
                "GET",
                "/policies/p/version".to_string(),
                Endpoint::ListPolicyVersions,
            ),
            (
                "GET",
                "/policies/p/version/2".to_string(),
                Endpoint::GetPolicyVersion,
            ),
            (
                "PATCH",
                "/policies/p/version/2".to_string(),
                Endpoint::SetDefaultPolicyVersion,
            ),
            (
                "DELETE",
                "/policies/p/version/2".to_string(),
                Endpoint::DeletePolicyVersion,
            ),
        ];
        for (m, p, e) in cases {
            assert_eq!(route(m, &segs(&p)).map(|r| r.endpoint), Some(e), "{m} {p}");
        }
        for e in Endpoint::ALL {
            assert!(e.action().starts_with("iot:"));
        }
    }

    #[test]
    fn other_operations_are_named() {
        assert_eq!(other_operation("GET", &segs("/jobs")), Some("ListJobs"));
        assert_eq!(
            other_operation("GET", &segs("/thing-types")),
            Some("ListThingTypes")
        );
        assert_eq!(
            route("GET", &segs("/endpoint")).map(|r| r.endpoint),
            Some(Endpoint::DescribeEndpoint)
        );
        assert_eq!(route("GET", &segs("/jobs")), None);
        assert_eq!(
            route("POST", &segs("/thing-types/t/deprecate")).map(|r| r.endpoint),
            Some(Endpoint::DeprecateThingType)
        );
        assert_eq!(
            other_operation("GET", &segs("/no-such-thing-here/x/y")),
            None
        );
    }
}
