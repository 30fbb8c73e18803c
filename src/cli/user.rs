//! `strato user create|delete|list`: SCRAM users in the metadata store, written directly
//! (the way the first administrator is made, before anyone can log in to use
//! AlterUserScramCredentials). Passwords come from standard input and are stored salted.

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::cluster_status::open_metadata;
use crate::cli::table::render_table;
use crate::config::OutputFormat;
use crate::config::client::read_password;
use crate::config::users::{
    ScramMechanismArg, UserCommand, UserCreateArgs, UserDeleteArgs, UserListArgs,
};
use crate::security::credentials;
use crate::security::scram::{ITERATIONS_MAX, ITERATIONS_MIN, ScramCredential, ScramMechanism};

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => create(args).await,
        UserCommand::Delete(args) => delete(args).await,
        UserCommand::List(args) => list(args).await,
    }
}

async fn create(args: UserCreateArgs) -> anyhow::Result<()> {
    credentials::check_user_name(&args.name).context("user name")?;
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&args.iterations) {
        bail!("--iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}");
    }
    let mechanisms = match args.mechanism {
        None => ScramMechanism::ALL.to_vec(),
        Some(ScramMechanismArg::ScramSha256) => vec![ScramMechanism::Sha256],
        Some(ScramMechanismArg::ScramSha512) => vec![ScramMechanism::Sha512],
    };
    let password = read_password(std::io::stdin(), "standard input")?;
    let iterations = args.iterations;
    let credentials = tokio::task::spawn_blocking(move || {
        mechanisms
            .into_iter()
            .map(|m| ScramCredential::from_password(m, password.expose().as_bytes(), iterations))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .context("derive the credentials")??;
    let meta = open_metadata(&args.store.metadata, &args.store.data_dir).await?;
    credentials::alter(meta.as_ref(), &args.name, &credentials, &[])
        .await
        .context("store the user")?;
    let names: Vec<&str> = credentials.iter().map(|c| c.mechanism.name()).collect();
    println!(
        "user {} has credentials for {}",
        args.name,
        names.join(", ")
    );
    Ok(())
}

async fn delete(args: UserDeleteArgs) -> anyhow::Result<()> {
    let meta = open_metadata(&args.store.metadata, &args.store.data_dir).await?;
    if !credentials::delete_user(meta.as_ref(), &args.name)
        .await
        .context("delete the user")?
    {
        bail!("no user {:?}", args.name);
    }
    println!("deleted user {}", args.name);
    Ok(())
}

#[derive(Serialize)]
struct UserLine {
    name: String,
    mechanisms: Vec<MechanismLine>,
}

#[derive(Serialize)]
struct MechanismLine {
    mechanism: &'static str,
    iterations: u32,
}

async fn list(args: UserListArgs) -> anyhow::Result<()> {
    let meta = open_metadata(&args.store.metadata, &args.store.data_dir).await?;
    let users = credentials::list(meta.as_ref())
        .await
        .context("list users")?;
    let lines: Vec<UserLine> = users
        .into_iter()
        .map(|u| UserLine {
            name: u.name,
            mechanisms: u
                .mechanisms
                .into_iter()
                .map(|(m, iterations)| MechanismLine {
                    mechanism: m.name(),
                    iterations,
                })
                .collect(),
        })
        .collect();
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&lines)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = lines
                .iter()
                .map(|u| {
                    let mechanisms: Vec<String> = u
                        .mechanisms
                        .iter()
                        .map(|m| format!("{} ({} iterations)", m.mechanism, m.iterations))
                        .collect();
                    vec![u.name.clone(), mechanisms.join(", ")]
                })
                .collect();
            print!("{}", render_table(&["USER", "MECHANISMS"], &rows));
        }
    }
    Ok(())
}
