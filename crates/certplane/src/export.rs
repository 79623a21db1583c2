//! `certplane admin export` / `import`: the whole deployment as JSON lines, so a SQLite
//! deployment moves to PostgreSQL (or anywhere) with nothing lost. The first line is a header;
//! every other line is one stored document (issuing CA, accounts, access keys, certificates,
//! transfers, CAs, things, policies, attachments) in creation order within its kind.

use std::io::{BufRead, Write as _};
use std::sync::Arc;

use certplane_core::store::{Doc, Filter, Kind, PageQuery, Store, Write};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::bootstrap::Location;

const FORMAT: &str = "certplane-export";
const FORMAT_VERSION: u32 = 1;
const PAGE: usize = 1000;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    documents: u64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    kind: String,
    key: String,
    account: String,
    region: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    idx1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    idx2: Option<String>,
    body: serde_json::Value,
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    // indicatif draws nothing when stderr is not a terminal.
    bar
}

fn to_line<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("encoding the export: {e}"))
}

async fn open_store(at: &Location) -> Result<Arc<dyn Store>, String> {
    certplane_store::open(&at.data_dir, at.database_url.as_deref()).await
}

async fn total(store: &dyn Store) -> Result<u64, String> {
    let mut n = 0;
    for kind in Kind::ALL {
        n += store
            .count(kind, &Filter::default())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(n)
}

pub async fn export(at: &Location) -> Result<(), String> {
    let store = open_store(at).await?;
    let documents = total(store.as_ref()).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let header = Header {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        documents,
    };
    let write_err = |e: std::io::Error| format!("writing the export: {e}");
    writeln!(out, "{}", to_line(&header)?).map_err(write_err)?;
    let bar = progress(documents, "export");
    for kind in Kind::ALL {
        let mut after = None;
        loop {
            let page = PageQuery {
                after_seq: after,
                limit: PAGE,
                ascending: true,
            };
            let rows = store
                .query(kind, &Filter::default(), page)
                .await
                .map_err(|e| e.to_string())?;
            for r in &rows {
                let d = &r.doc;
                let line = Line {
                    kind: d.kind.as_str().into(),
                    key: d.key.clone(),
                    account: d.account.clone(),
                    region: d.region.clone(),
                    idx1: d.idx1.clone(),
                    idx2: d.idx2.clone(),
                    body: serde_json::from_str(&d.body).map_err(|e| {
                        format!("document {} {} is not JSON: {e}", kind.as_str(), d.key)
                    })?,
                };
                writeln!(out, "{}", to_line(&line)?).map_err(write_err)?;
                bar.inc(1);
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = Some(last.seq),
                _ => break,
            }
        }
    }
    out.flush().map_err(write_err)?;
    bar.finish_and_clear();
    Ok(())
}

pub async fn import(at: &Location, file: &str) -> Result<(), String> {
    let store = open_store(at).await?;
    if total(store.as_ref()).await? != 0 {
        return Err("the target database is not empty; import only loads into an empty one".into());
    }
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| format!("opening {file}: {e}"))?,
        ))
    };
    let mut lines = reader.lines();
    let header: Header = match lines.next() {
        Some(Ok(l)) => {
            serde_json::from_str(&l).map_err(|e| format!("line 1: not an export header: {e}"))?
        }
        Some(Err(e)) => return Err(format!("reading {file}: {e}")),
        None => return Err(format!("{file} is empty")),
    };
    if header.format != FORMAT || header.version != FORMAT_VERSION {
        return Err(format!(
            "{file} is format {} version {}; this certplane reads {FORMAT} version {FORMAT_VERSION}",
            header.format, header.version
        ));
    }
    let bar = progress(header.documents, "import");
    let mut batch = Vec::with_capacity(PAGE);
    let mut count = 0u64;
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| format!("reading {file}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 2))?;
        let kind = Kind::parse(&l.kind)
            .ok_or_else(|| format!("line {}: unknown kind {}", i + 2, l.kind))?;
        batch.push(Write::Insert(Doc {
            kind,
            key: l.key,
            account: l.account,
            region: l.region,
            idx1: l.idx1,
            idx2: l.idx2,
            body: l.body.to_string(),
        }));
        if batch.len() == PAGE {
            count += batch.len() as u64;
            store
                .apply(std::mem::take(&mut batch))
                .await
                .map_err(|e| format!("loading documents: {e}"))?;
            bar.set_position(count);
        }
    }
    count += batch.len() as u64;
    store
        .apply(batch)
        .await
        .map_err(|e| format!("loading documents: {e}"))?;
    bar.finish_and_clear();
    if count != header.documents {
        return Err(format!(
            "the export announced {} documents but held {count}; the import is incomplete",
            header.documents
        ));
    }
    eprintln!("certplane: imported {count} documents");
    Ok(())
}
