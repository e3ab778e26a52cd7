//! Test support: a fresh, empty Postgres database per test on the local server (127.0.0.1:5432,
//! trust auth, as `scripts/services.sh` sets up), dropped by nobody — names are unique and the
//! CI machine is thrown away. `TEST_DATABASE_ADMIN_URL` overrides the admin connection.

use sqlx::Connection;

/// The admin connection used to create test databases.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database named `sn1_<tag>_<random>` and returns its URL.
pub async fn fresh_database(tag: &str) -> Result<String, sqlx::Error> {
    let admin = admin_url();
    let name = format!("sn1_{}_{:08x}", tag, rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    // The name is ours: a fixed prefix, a tag from test code and hex digits.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}
