//! PostgreSQL over TLS with `sslmode=verify-full`, run when `TEST_DATABASE_TLS_URL` is set
//! (`postgres://postgres@localhost:<port>/postgres`): a server that accepts TLS connections only,
//! whose certificate (for `localhost` only) the CA in `TEST_DATABASE_CA_FILE` signed. `.ci/run`
//! starts one with a CA made at run time.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use store::SeaStore;

/// The server's URL (without query) and the CA file, or `None` (after a note).
fn tls_server(test: &str) -> Option<(String, String)> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(url) = get("TEST_DATABASE_TLS_URL") else {
        eprintln!("skipping {test}: set TEST_DATABASE_TLS_URL and TEST_DATABASE_CA_FILE to run it");
        return None;
    };
    let ca = get("TEST_DATABASE_CA_FILE").unwrap_or_else(|| {
        panic!("TEST_DATABASE_TLS_URL is set, TEST_DATABASE_CA_FILE must be too")
    });
    assert!(
        url.contains("@localhost:"),
        "{url}: the certificate names localhost"
    );
    Some((url, ca))
}

#[tokio::test]
async fn verify_full_with_the_ca_connects_over_tls() {
    let Some((url, ca)) = tls_server("verify_full_with_the_ca_connects_over_tls") else {
        return;
    };
    let store = SeaStore::connect(&format!("{url}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.try_get::<bool>("", "ssl").unwrap(),
        "the connection is not TLS"
    );
    store.close().await.unwrap();
}

/// The error of connecting to `url`, which must fail.
async fn refused(url: &str) -> String {
    match SeaStore::connect(url).await {
        Ok(_) => panic!("{url}: connected, but verify-full must refuse"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host_name() {
    let Some((url, ca)) = tls_server("verify_full_refuses_a_certificate_for_another_host_name")
    else {
        return;
    };
    let url = url.replace("@localhost:", "@127.0.0.1:");
    let error = refused(&format!("{url}?sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn verify_full_without_the_ca_refuses_the_unknown_issuer() {
    let Some((url, _)) = tls_server("verify_full_without_the_ca_refuses_the_unknown_issuer") else {
        return;
    };
    let error = refused(&format!("{url}?sslmode=verify-full")).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_server_that_only_takes_tls_refuses_sslmode_disable() {
    let Some((url, _)) = tls_server("a_server_that_only_takes_tls_refuses_sslmode_disable") else {
        return;
    };
    let error = refused(&format!("{url}?sslmode=disable")).await;
    assert!(
        error.contains("no encryption") || error.contains("pg_hba"),
        "{error}"
    );
}
