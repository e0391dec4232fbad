//! `voicepaas number …`: the operator's DID grants (agents' contract §3.3), on the
//! database directly, printing what the operator API answers.

use clap::Subcommand;
use serde_json::json;

use super::print;
use crate::config::Settings;
use crate::domain::PhoneNumber;
use crate::store::Store;

/// The number commands.
#[derive(Debug, Subcommand)]
pub enum NumberCommand {
    /// Grant a DID to an account (moving it from another account drops that one's route).
    Grant {
        /// The DID.
        number: String,
        /// The account it is granted to.
        #[arg(long)]
        account: String,
    },
    /// Revoke a DID's grant (and its route).
    Revoke {
        /// The DID.
        number: String,
    },
    /// List the grants, of one account if given.
    List {
        /// Only this account's numbers.
        #[arg(long)]
        account: Option<String>,
    },
}

/// Runs one number command.
pub async fn run(store: &Store, settings: &Settings, command: NumberCommand) -> Result<(), String> {
    let failed = |e: crate::store::StoreError| e.to_string();
    let tz = settings.timezone;
    match command {
        NumberCommand::Grant { number, account } => {
            let number = PhoneNumber::parse("number", &number).map_err(|e| e.0)?;
            store
                .find_account(&account)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("account {account} not found"))?;
            store
                .grant_number(number.as_str(), &account)
                .await
                .map_err(failed)?;
            let grant = store
                .find_grant(number.as_str())
                .await
                .map_err(failed)?
                .ok_or("the grant was revoked meanwhile")?;
            print(&grant.to_json(tz));
        }
        NumberCommand::Revoke { number } => {
            if !store.revoke_number(&number).await.map_err(failed)? {
                return Err(format!("number {number} is not granted"));
            }
            print(&json!({"number": number}));
        }
        NumberCommand::List { account } => {
            let mut numbers = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_grants(account.as_deref(), after.as_deref(), 1000)
                    .await
                    .map_err(failed)?;
                after = page.last().map(|g| g.number.clone());
                numbers.extend(page.iter().map(|g| g.to_json(tz)));
                if page.len() < 1000 {
                    break;
                }
            }
            print(&json!({"numbers": numbers}));
        }
    }
    Ok(())
}
