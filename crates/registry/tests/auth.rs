//! Authentication against real registries: htpasswd basic auth, and the bearer token flow
//! with a token issuer written for the tests.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::{Auth, Registry, TokenIssuer};
use wharf_registry::{ClientConfig, Credentials, Error, ManifestRef, Repository};

fn users() -> Vec<(String, String)> {
    vec![("alice".into(), "s3cret".into())]
}

fn client_with(host: &str, creds: Option<Credentials>) -> wharf_registry::Client {
    let mut credentials = HashMap::new();
    if let Some(c) = creds {
        credentials.insert(host.to_string(), c);
    }
    common::client(ClientConfig {
        credentials,
        ..ClientConfig::default()
    })
}

async fn push_and_pull_blob(c: &wharf_registry::Client, repo: &Repository) -> Result<(), Error> {
    let d = c.push_blob_bytes(repo, b"authenticated blob".to_vec()).await?;
    assert_eq!(c.get_blob_bytes(repo, &d, 1024).await?, b"authenticated blob");
    Ok(())
}

#[tokio::test]
async fn basic_auth_accepts_the_right_password_and_types_the_wrong_one() {
    let reg = Registry::start(Auth::Htpasswd(users()));
    let repo = Repository::new(&reg.host, "wharf/basic").unwrap();

    let good = client_with(&reg.host, Some(Credentials::basic("alice", "s3cret")));
    good.ping(&reg.host).await.unwrap();
    push_and_pull_blob(&good, &repo).await.unwrap();

    for creds in [Some(Credentials::basic("alice", "wrong")), None] {
        let c = client_with(&reg.host, creds);
        let err = c.ping(&reg.host).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert_eq!(err.status().unwrap().as_u16(), 401);
        let err = c
            .head_blob(&repo, &wharf_image::Digest::sha256(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn basic_auth_from_a_docker_config_file() {
    let reg = Registry::start(Auth::Htpasswd(users()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    // base64("alice:s3cret")
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"http://{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#, reg.host),
    )
    .unwrap();
    let c = wharf_registry::Client::new(ClientConfig {
        credential_files: Some(vec![cfg]),
        ..ClientConfig::default()
    })
    .unwrap();
    let repo = Repository::new(&reg.host, "wharf/fromfile").unwrap();
    push_and_pull_blob(&c, &repo).await.unwrap();
}

#[tokio::test]
async fn bearer_token_flow_with_scopes_and_token_cache() {
    let issuer = TokenIssuer::start(users(), 300).await;
    let reg = Registry::start(Auth::Token(issuer.clone()));
    let c = client_with(&reg.host, Some(Credentials::basic("alice", "s3cret")));
    let repo = Repository::new(&reg.host, "private/app").unwrap();

    push_and_pull_blob(&c, &repo).await.unwrap();
    let d = c.push_blob_bytes(&repo, b"config".to_vec()).await.unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":6,"digest":"{d}"}},"layers":[]}}"#
    );
    let tag = ManifestRef::parse("v1").unwrap();
    c.put_manifest(
        &repo,
        &tag,
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await
    .unwrap();
    assert_eq!(c.get_manifest(&repo, &tag).await.unwrap().bytes, manifest.as_bytes());
    assert_eq!(c.list_tags(&repo, None).await.unwrap(), ["v1"]);
    assert_eq!(c.catalog(&reg.host, None).await.unwrap(), ["private/app"]);

    let requests = issuer.requests.lock().unwrap().clone();
    // Tokens are cached per scope: one for pull, one for pull+push, one for the catalog,
    // (plus at most one per re-authentication), not one per request.
    assert!(requests.len() <= 5, "{requests:#?}");
    assert!(
        requests.iter().all(|q| q.contains("service=wharf-test-registry")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|q| q.contains("scope=repository%3Aprivate%2Fapp%3Apull%2Cpush")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|q| q.contains("registry%3Acatalog%3A*")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn bearer_denies_wrong_password_and_anonymous_push() {
    let issuer = TokenIssuer::start(users(), 300).await;
    let reg = Registry::start(Auth::Token(issuer.clone()));
    let private = Repository::new(&reg.host, "private/app").unwrap();

    let wrong = client_with(&reg.host, Some(Credentials::basic("alice", "nope")));
    let err = wrong
        .head_blob(&private, &wharf_image::Digest::sha256(b"x"))
        .await
        .unwrap_err();
    match &err {
        Error::Unauthorized { errors, .. } => assert!(errors.has("UNAUTHORIZED"), "{errors}"),
        e => panic!("unexpected {e:?}"),
    }

    // Anonymous: pull allowed under public/, nothing else; the registry's insufficient-scope
    // answer after one re-authentication becomes a typed error.
    let anon = client_with(&reg.host, None);
    let err = anon
        .head_blob(&private, &wharf_image::Digest::sha256(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let public = Repository::new(&reg.host, "public/app").unwrap();
    assert_eq!(
        anon.head_blob(&public, &wharf_image::Digest::sha256(b"x"))
            .await
            .unwrap(),
        None
    );
    let err = anon.push_blob_bytes(&public, b"anon".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn expired_tokens_are_renewed() {
    let issuer = TokenIssuer::start(users(), 1).await;
    let reg = Registry::start(Auth::Token(issuer.clone()));
    let c = client_with(&reg.host, Some(Credentials::basic("alice", "s3cret")));
    let repo = Repository::new(&reg.host, "private/exp").unwrap();
    assert_eq!(
        c.head_blob(&repo, &wharf_image::Digest::sha256(b"x")).await.unwrap(),
        None
    );
    let before = issuer.requests.lock().unwrap().len();
    assert_eq!(
        c.head_blob(&repo, &wharf_image::Digest::sha256(b"y")).await.unwrap(),
        None
    );
    // Whether the second request re-used the token depends on timing; after the token's
    // lifetime has surely passed, a new one must be fetched.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mid = issuer.requests.lock().unwrap().len();
    assert!(before >= 1, "no token was fetched at all");
    assert_eq!(
        c.head_blob(&repo, &wharf_image::Digest::sha256(b"z")).await.unwrap(),
        None
    );
    assert!(issuer.requests.lock().unwrap().len() > mid, "expired token was reused");
}

#[tokio::test]
async fn bearer_push_mount_and_pull_through_the_store() {
    let issuer = TokenIssuer::start(users(), 300).await;
    let reg = Registry::start(Auth::Token(issuer.clone()));
    let c = client_with(&reg.host, Some(Credentials::basic("alice", "s3cret")));
    let dir = tempfile::tempdir().unwrap();
    let src = wharf_image::Store::open(dir.path().join("src")).unwrap();
    let dst = wharf_image::Store::open(dir.path().join("dst")).unwrap();
    let built = common::build_image(
        &src,
        ("linux", "amd64"),
        &[(&common::tar_of(&[("f", b"behind a token")]), "gzip")],
        false,
    );
    let local = common::reference("local.test/tok:v1");
    src.tag(&local, &src.resolve(&local.with_digest(built.digest.clone())).unwrap())
        .unwrap();
    let a = common::reference(&format!("{}/team/a:v1", reg.host));
    let b = common::reference(&format!("{}/team/b:v1", reg.host));
    c.push(&src, &local, &a, &Default::default()).await.unwrap();
    let opts = wharf_registry::PushOptions {
        mount_from: Some(Repository::of(&a).unwrap()),
        ..Default::default()
    };
    let pushed = c.push(&src, &local, &b, &opts).await.unwrap();
    assert_eq!(pushed.mounted, 2);
    let pulled = c.pull(&b, &dst, &Default::default()).await.unwrap();
    assert_eq!(pulled.digest, built.digest);
    assert_eq!(
        dst.read_blob(&built.layers[0], 1 << 20).unwrap(),
        src.read_blob(&built.layers[0], 1 << 20).unwrap()
    );
    // The mount asked for push on the target and pull on the source in one token.
    let requests = issuer.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|q| q.contains("scope=repository%3Ateam%2Fa%3Apull&")
                && q.contains("scope=repository%3Ateam%2Fb%3Apull%2Cpush")),
        "{requests:#?}"
    );
}
