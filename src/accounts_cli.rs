//! `ardoise db`, `ardoise school` and `ardoise user`: the database and the first accounts,
//! from the command line of the server's machine (bootstrap: there is no admin to log in as
//! before the first one is made here).
//!
//! Passwords are read from standard input (`--password-stdin`), never from the command line,
//! where other users of the machine could see them.

use anyhow::{Context, Result};
use ardoise_server::Config;
use ardoise_store::{NewUser, Store, UserRole};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

/// The configuration file option shared by these commands.
#[derive(Args, Clone)]
pub struct ConfigArg {
    /// Configuration file (for database.url and the data directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `ardoise db …`
#[derive(Subcommand)]
pub enum DbCommand {
    /// Apply the migrations the database lacks (the server also does it at start).
    Migrate(ConfigArg),
    /// Check that the database opens and is at this binary's schema; exit 1 otherwise.
    Check(ConfigArg),
}

/// `ardoise school …`
#[derive(Subcommand)]
pub enum SchoolCommand {
    /// Add a school (and its département when new); prints the school's id.
    Add {
        /// The département's code, e.g. 02.
        #[arg(long)]
        departement: String,
        /// The département's name, when it is new.
        #[arg(long)]
        departement_name: Option<String>,
        /// The school's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the schools.
    List(ConfigArg),
}

/// `ardoise user …`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add an admin or a teacher; the password is read from standard input. Prints its id.
    Add {
        /// Login email.
        #[arg(long)]
        email: String,
        /// admin or teacher.
        #[arg(long, value_parser = ["admin", "teacher"])]
        role: String,
        /// A teacher's school (repeat for several), or the one school an admin manages.
        #[arg(long)]
        school: Vec<i64>,
        /// The département (code) an admin manages; without it or --school, an admin manages
        /// every département.
        #[arg(long)]
        departement: Option<String>,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `ardoise keys …`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a new token signing key (it signs from now on, on every server within seconds)
    /// and retire all but the two newest: tokens signed with a retired key are refused.
    Rotate(ConfigArg),
}

/// Run `ardoise keys …`.
pub async fn keys(cmd: KeysCommand) -> Result<()> {
    let KeysCommand::Rotate(c) = cmd;
    let config = load_config(&c)?;
    let store = open(&config, true).await?;
    // The first key is the configured secret: make it before the new one.
    let secret = ardoise_server::auth::TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
    ardoise_server::auth::TokenSigner::from_store(&secret, config.auth.token_ttl_secs, &store).await?;
    let kid = ardoise_server::auth::rotate_keys(&store).await?;
    store.audit("command line", "keys.rotate", &format!("key:{kid}"), "").await?;
    println!("{kid}");
    Ok(())
}

fn load_config(c: &ConfigArg) -> Result<Config> {
    Config::load(c.config.as_deref(), std::env::vars()).context("configuration")
}

async fn open(config: &Config, migrate: bool) -> Result<Store> {
    let url = config.database_url();
    let store = if migrate { Store::connect(&url).await } else { Store::open(&url).await };
    store.map_err(|e| anyhow::anyhow!("database {}: {e}", ardoise_store::redact(&url)))
}

/// Run `ardoise db …`.
pub async fn db(cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Migrate(c) => {
            let store = open(&load_config(&c)?, true).await?;
            let n = store.check().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("database at the current schema ({n} migrations applied, {:?})", store.backend());
        }
        DbCommand::Check(c) => {
            let store = open(&load_config(&c)?, false).await?;
            let n = store.check().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("database ok ({n} migrations applied, {:?})", store.backend());
        }
    }
    Ok(())
}

/// Run `ardoise school …`.
pub async fn school(cmd: SchoolCommand) -> Result<()> {
    match cmd {
        SchoolCommand::Add { departement, departement_name, name, config } => {
            let store = open(&load_config(&config)?, true).await?;
            let (code, name) = (departement.trim(), name.trim());
            anyhow::ensure!(!code.is_empty() && code.len() <= 8, "--departement: 1 to 8 characters");
            anyhow::ensure!(!name.is_empty() && name.chars().count() <= 120, "--name: 1 to 120 characters");
            let deps = store.departements().await?;
            let dep = match deps.iter().find(|d| d.code == code) {
                Some(d) => d.id,
                None => store.create_departement(code, departement_name.as_deref().unwrap_or(code)).await?,
            };
            let id = store.create_school(dep, name).await?;
            store.audit("command line", "school.create", &format!("school:{id}"), name).await?;
            println!("{id}");
        }
        SchoolCommand::List(c) => {
            let store = open(&load_config(&c)?, false).await?;
            let deps = store.departements().await?;
            for s in store.schools(None).await? {
                let d = deps.iter().find(|d| d.id == s.departement).map(|d| d.code.as_str()).unwrap_or("?");
                println!("{}\t{}\t{}", s.id, d, s.name);
            }
        }
    }
    Ok(())
}

/// Run `ardoise user …`.
pub async fn user(cmd: UserCommand) -> Result<()> {
    let UserCommand::Add { email, role, school, departement, password_stdin: _, config } = cmd;
    anyhow::ensure!(ardoise_server::staff::valid_email(&email), "--email: not an email address");
    let role = if role == "admin" { UserRole::Admin } else { UserRole::Teacher };
    anyhow::ensure!(role == UserRole::Admin || !school.is_empty(), "a teacher needs --school");
    anyhow::ensure!(role == UserRole::Teacher || school.len() <= 1, "an admin manages one school at most");
    anyhow::ensure!(role == UserRole::Admin || departement.is_none(), "--departement is for admins");
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    ardoise_server::passwords::check_strength(&password).map_err(anyhow::Error::msg)?;
    let store = open(&load_config(&config)?, true).await?;
    let dep = match &departement {
        Some(code) => Some(
            store
                .departements()
                .await?
                .into_iter()
                .find(|d| d.code == *code)
                .map(|d| d.id)
                .with_context(|| format!("no département {code} (add a school in it first)"))?,
        ),
        None => None,
    };
    for s in &school {
        store.school(*s).await.map_err(|e| anyhow::anyhow!("--school {s}: {e}"))?;
    }
    let hash =
        ardoise_server::passwords::hash(password).await.map_err(|_| anyhow::anyhow!("the password thread is busy"))?;
    let new = NewUser { email: &email, password_hash: &hash, role, departement: dep, school: school.first().copied() };
    let id = store.create_user(&new).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if role == UserRole::Teacher {
        for s in school.iter().skip(1) {
            store.add_teacher_school(id, *s).await?;
        }
    }
    store
        .audit("command line", "user.create", &format!("user:{id}"), &format!("{} {}", role.as_str(), email.trim()))
        .await?;
    println!("{id}");
    Ok(())
}
