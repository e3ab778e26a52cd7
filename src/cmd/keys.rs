//! `sn1-gateway keys …`: managed API keys from the command line, the same operations as
//! `/admin/keys`. Each prints one JSON object on stdout (`create`'s holds the key, shown this
//! once); errors go to stderr with a non-zero exit.

use sn1_contracts::store::Store;
use sn1_contracts::store::keys::{KeyChange, KeyLimits, NewKey, expires_in};
use std::process::ExitCode;

/// Where the keys are and what to do with them.
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// The store: `postgres://…` (distributed), or `sqlite:PATH` (standalone's
    /// `DATA_DIR/sn1.sqlite3`).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub action: KeysAction,
}

/// One operation on the keys.
#[derive(clap::Subcommand, Debug)]
pub enum KeysAction {
    /// Makes a key and prints it (with its id) once.
    Create {
        /// Who the key is for.
        #[arg(long)]
        name: String,
        /// Requests per minute, for the whole fleet.
        #[arg(long)]
        rpm: Option<u32>,
        /// Answers in flight at once, for the whole fleet.
        #[arg(long = "max-streams")]
        max_streams: Option<u32>,
        /// Lifetime, e.g. `30d` (default: never expires).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Lists the keys (ids, names, limits; never a key).
    List,
    /// Revokes a key: refused on every replica from its next request.
    Revoke {
        /// The key's id (`key-…`).
        id: String,
    },
    /// Changes a key's limits or expiry; `none` removes a limit, `never` an expiry.
    SetLimits {
        /// The key's id (`key-…`).
        id: String,
        /// Requests per minute (a number, or `none`).
        #[arg(long, value_parser = parse_limit)]
        rpm: Option<Limit>,
        /// Answers in flight at once (a number, or `none`).
        #[arg(long = "max-streams", value_parser = parse_limit)]
        max_streams: Option<Limit>,
        /// Lifetime from now (e.g. `30d`, or `never`).
        #[arg(long)]
        expires: Option<String>,
    },
}

/// A limit given on the command line: a number, or none.
#[derive(Clone, Copy, Debug)]
pub struct Limit(Option<u32>);

fn parse_limit(text: &str) -> Result<Limit, String> {
    match text {
        "none" => Ok(Limit(None)),
        _ => match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Limit(Some(n))),
            _ => Err(format!("{text:?}: a positive whole number, or `none`")),
        },
    }
}

/// Opens the store named by `url`.
async fn open(url: &str) -> anyhow::Result<Store> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        return Ok(Store::sqlite(std::path::Path::new(path)).await?);
    }
    let store = Store::postgres(url, 2).await?;
    store.check_migrations().await?;
    Ok(store)
}

/// Prints one JSON object (one line) on stdout.
fn print(json: Result<String, serde_json::Error>) -> anyhow::Result<()> {
    println!("{}", json?);
    Ok(())
}

/// Runs one operation.
pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let Some(url) = args.database_url else {
        anyhow::bail!("DATABASE_URL / --database-url is required (postgres://… or sqlite:PATH)");
    };
    let store = open(&url).await?;
    match args.action {
        KeysAction::Create {
            name,
            rpm,
            max_streams,
            expires,
        } => {
            let new = NewKey {
                name,
                limits: KeyLimits { rpm, max_streams },
                expires_at: expires
                    .as_deref()
                    .map(expires_in)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--expires: {e}"))?,
            };
            print(serde_json::to_string(&store.create_key(&new).await?))?;
        }
        KeysAction::List => print(serde_json::to_string(
            &serde_json::json!({"keys": store.list_keys().await?}),
        ))?,
        KeysAction::Revoke { id } => match store.revoke_key(&id).await? {
            Some(info) => print(serde_json::to_string(&info))?,
            None => anyhow::bail!("no key has the id {id:?}"),
        },
        KeysAction::SetLimits {
            id,
            rpm,
            max_streams,
            expires,
        } => {
            let expires_at = match expires.as_deref() {
                None => None,
                Some("never") => Some(None),
                Some(text) => Some(Some(
                    expires_in(text).map_err(|e| anyhow::anyhow!("--expires: {e}"))?,
                )),
            };
            let change = KeyChange {
                rpm: rpm.map(|l| l.0),
                max_streams: max_streams.map(|l| l.0),
                expires_at,
            };
            match store.change_key(&id, &change).await? {
                Some(info) => print(serde_json::to_string(&info))?,
                None => anyhow::bail!("no key has the id {id:?}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
