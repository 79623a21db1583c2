//! What the account-scoped admin commands (users, access keys, IAM policies) share: their
//! argument groups and how they print a listing (`--json` or a table).

use clap::Args;

use crate::bootstrap::Location;

/// `--account ID [--json]`: one account's listing.
#[derive(Args)]
pub struct AccountListing {
    #[arg(long)]
    pub account: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: Location,
}

/// `--account ID --name NAME`: one named thing of an account.
#[derive(Args)]
pub struct AccountNamed {
    #[arg(long)]
    pub account: String,
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub dir: Location,
}

/// Pretty-printed JSON on stdout.
pub fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| format!("encoding output: {e}"))?
    );
    Ok(())
}

/// A listing: a JSON array of `to_json` of each item, or the table `table` prints.
pub fn print_listing<T>(
    json: bool,
    items: &[T],
    to_json: impl Fn(&T) -> serde_json::Value,
    table: impl FnOnce(&[T]),
) -> Result<(), String> {
    if json {
        print_json(&serde_json::Value::Array(
            items.iter().map(to_json).collect(),
        ))
    } else {
        table(items);
        Ok(())
    }
}
