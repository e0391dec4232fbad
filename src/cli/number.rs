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

/// Why a number command failed; its text is what the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum NumberCliError {
    /// The number is not a phone number.
    #[error("{0}")]
    Param(#[from] crate::domain::ParamError),
    /// No such account.
    #[error("account {0} not found")]
    AccountNotFound(String),
    /// The number is not granted (revoke), or its grant went meanwhile (grant).
    #[error("number {0} is not granted")]
    NotGranted(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Grants listed per database read.
const LIST_PAGE: i64 = 1000;

/// Runs one number command.
pub async fn run(
    store: &Store,
    settings: &Settings,
    command: NumberCommand,
) -> Result<(), NumberCliError> {
    let tz = settings.timezone;
    match command {
        NumberCommand::Grant { number, account } => {
            let number = PhoneNumber::parse("number", &number)?;
            store
                .find_account(&account)
                .await?
                .ok_or(NumberCliError::AccountNotFound(account.clone()))?;
            store.grant_number(number.as_str(), &account).await?;
            let grant = store
                .find_grant(number.as_str())
                .await?
                .ok_or_else(|| NumberCliError::NotGranted(number.to_string()))?;
            print(&grant.to_json(tz));
        }
        NumberCommand::Revoke { number } => {
            if !store.revoke_number(&number).await? {
                return Err(NumberCliError::NotGranted(number));
            }
            print(&json!({"number": number}));
        }
        NumberCommand::List { account } => {
            let mut numbers = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_grants(account.as_deref(), after.as_deref(), LIST_PAGE)
                    .await?;
                after = page.last().map(|g| g.number.clone());
                numbers.extend(page.iter().map(|g| g.to_json(tz)));
                if (page.len() as i64) < LIST_PAGE {
                    break;
                }
            }
            print(&json!({"numbers": numbers}));
        }
    }
    Ok(())
}
