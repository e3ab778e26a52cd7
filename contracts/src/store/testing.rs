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

/// Runs `deploy/postgres/api-role.sql` on the (migrated) database at `url` for a role of its
/// own, `sn1_api_<random>` (roles belong to the server, shared by every test database), and
/// returns that role's name and the URL an api would use: the same database, as that role.
/// [`drop_role`] removes it.
pub async fn api_role(url: &str) -> Result<(String, String), sqlx::Error> {
    use sqlx::ConnectOptions;
    let role = format!("sn1_api_{:08x}", rand::random::<u32>());
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/postgres/api-role.sql"
    );
    let script = std::fs::read_to_string(path).map_err(sqlx::Error::Io)?;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(script.replace("sn1_api", &role)))
        .execute(&mut conn)
        .await?;
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let role_url = options.username(&role).to_url_lossy().to_string();
    Ok((role, role_url))
}

/// Drops a role [`api_role`] made (its grants in the database at `url` first).
pub async fn drop_role(url: &str, role: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    // The name is ours: a fixed prefix and hex digits.
    let sql = format!("DROP OWNED BY {role}; DROP ROLE {role}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    Ok(())
}
