//! Protocol behaviour against a real `docker-registry` (Debian's distribution 2.8).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Auth, Registry, default_client};
use wharf_image::Digest;
use wharf_image::media;
use wharf_registry::{BlobSource, ClientConfig, Error, ManifestRef, Repository, Uploaded};

/// Pushes a config and one layer, returns (manifest bytes, media type).
async fn push_image(c: &wharf_registry::Client, repo: &Repository, docker: bool, salt: &str) -> (Vec<u8>, String) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Env":["SALT={salt}"]}}}}"#,
        Digest::sha256(salt.as_bytes())
    );
    let layer = format!("layer bytes {salt}").into_bytes();
    let (cd, cs) = (Digest::sha256(config.as_bytes()), config.len());
    let (ld, ls) = (Digest::sha256(&layer), layer.len());
    assert_eq!(c.push_blob_bytes(repo, config.into_bytes()).await.unwrap(), cd);
    assert_eq!(c.push_blob_bytes(repo, layer).await.unwrap(), ld);
    let (mt, cmt, lmt) = if docker {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG, media::DOCKER_LAYER_GZIP)
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{cmt}","size":{cs},"digest":"{cd}"}},"layers":[{{"mediaType":"{lmt}","size":{ls},"digest":"{ld}"}}]}}"#
    );
    (manifest.into_bytes(), mt.to_string())
}

#[tokio::test]
async fn manifests_round_trip_byte_identical_oci_and_docker() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    c.ping(&reg.host).await.unwrap();
    for (docker, name) in [(false, "wharf/oci"), (true, "wharf/docker")] {
        let repo = Repository::new(&reg.host, name).unwrap();
        let (bytes, mt) = push_image(&c, &repo, docker, name).await;
        let tag = ManifestRef::parse("v1").unwrap();
        let digest = c.put_manifest(&repo, &tag, &bytes, &mt).await.unwrap();
        assert_eq!(digest, Digest::sha256(&bytes));

        let by_tag = c.get_manifest(&repo, &tag).await.unwrap();
        assert_eq!(by_tag.bytes, bytes);
        assert_eq!(by_tag.digest, digest);
        assert_eq!(by_tag.media_type, mt);
        let by_digest = c
            .get_manifest(&repo, &ManifestRef::Digest(digest.clone()))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, bytes);
        let head = c.head_manifest(&repo, &tag).await.unwrap().unwrap();
        assert_eq!(head.digest, Some(digest.clone()));
        assert_eq!(head.size, Some(bytes.len() as u64));
        assert_eq!(head.media_type.as_deref(), Some(mt.as_str()));
        assert_eq!(by_tag.descriptor().size(), bytes.len() as u64);

        // Config blob comes back verified.
        let wharf_image::Manifest::Image { manifest, .. } = &by_tag.manifest else {
            panic!("not an image manifest")
        };
        let cd = Digest::from_oci(manifest.config().digest()).unwrap();
        let config = c.get_blob_bytes(&repo, &cd, 1 << 20).await.unwrap();
        assert_eq!(Digest::sha256(&config), cd);
        // A cap below the size is refused.
        assert!(matches!(
            c.get_blob_bytes(&repo, &cd, 10).await,
            Err(Error::SizeMismatch { .. })
        ));
    }
}

#[tokio::test]
async fn unknown_manifests_and_blobs_are_typed_errors_with_decoded_codes() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/missing").unwrap();
    let err = c
        .get_manifest(&repo, &ManifestRef::parse("nope").unwrap())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let codes = err.registry_errors().unwrap().codes();
    assert!(
        codes.contains(&"MANIFEST_UNKNOWN") || codes.contains(&"NAME_UNKNOWN"),
        "{codes:?}"
    );
    assert_eq!(
        c.head_manifest(&repo, &ManifestRef::parse("nope").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(c.head_blob(&repo, &Digest::sha256(b"x")).await.unwrap(), None);

    // A manifest whose blobs the registry lacks.
    let missing = Digest::sha256(b"never pushed");
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":12,"digest":"{missing}"}},"layers":[]}}"#
    );
    let err = c
        .put_manifest(
            &repo,
            &ManifestRef::parse("bad").unwrap(),
            m.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap_err();
    match &err {
        Error::Status { status, errors, .. } => {
            assert_eq!(status.as_u16(), 400);
            assert!(errors.has("MANIFEST_BLOB_UNKNOWN"), "{errors}");
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link_headers() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/many").unwrap();
    let (bytes, mt) = push_image(&c, &repo, false, "many").await;
    let mut want: Vec<String> = (0..105).map(|i| format!("t{i:03}")).collect();
    for t in &want {
        c.put_manifest(&repo, &ManifestRef::parse(t).unwrap(), &bytes, &mt)
            .await
            .unwrap();
    }
    want.sort();
    // distribution 2.8 ignores n/last on tags/list (its catalog pages; the tag list
    // paginates from distribution 3): the whole list must come back either way.
    let page = c.tags_page(&repo, Some(10), None).await.unwrap();
    assert!(page.items.len() == 10 && page.next.is_some() || page.items.len() == 105 && page.next.is_none());
    let mut all = c.list_tags(&repo, Some(10)).await.unwrap();
    all.sort();
    assert_eq!(all, want);

    let mut repos = vec!["wharf/many".to_string()];
    for i in 0..11 {
        let r = Repository::new(&reg.host, &format!("cat/r{i:02}")).unwrap();
        c.push_blob_bytes(&r, format!("blob {i}").into_bytes()).await.unwrap();
        let (b, mt) = push_image(&c, &r, true, &format!("cat{i}")).await;
        c.put_manifest(&r, &ManifestRef::parse("x").unwrap(), &b, &mt)
            .await
            .unwrap();
        repos.push(format!("cat/r{i:02}"));
    }
    repos.sort();
    let first = c.catalog_page(&reg.host, Some(5), None).await.unwrap();
    assert_eq!(first.items, repos[..5]);
    assert_eq!(c.catalog(&reg.host, Some(5)).await.unwrap(), repos);
    assert_eq!(c.catalog(&reg.host, None).await.unwrap(), repos);
}

#[tokio::test]
async fn delete_then_restore_by_putting_the_saved_body_back() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/del").unwrap();
    let (bytes, mt) = push_image(&c, &repo, true, "del").await;
    let tag = ManifestRef::parse("keep").unwrap();
    c.put_manifest(&repo, &tag, &bytes, &mt).await.unwrap();

    let saved = c.get_manifest(&repo, &tag).await.unwrap();
    c.delete_manifest(&repo, &saved.digest).await.unwrap();
    assert!(c.get_manifest(&repo, &tag).await.unwrap_err().is_not_found());
    assert!(
        c.get_manifest(&repo, &ManifestRef::Digest(saved.digest.clone()))
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Deleting again: 404.
    assert!(
        c.delete_manifest(&repo, &saved.digest)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let restored = c
        .put_manifest(&repo, &tag, &saved.bytes, &saved.media_type)
        .await
        .unwrap();
    assert_eq!(restored, saved.digest);
    let again = c.get_manifest(&repo, &tag).await.unwrap();
    assert_eq!(again.bytes, saved.bytes);
    assert_eq!(again.media_type, saved.media_type);

    // Blob deletion too.
    let d = c.push_blob_bytes(&repo, b"to delete".to_vec()).await.unwrap();
    c.delete_blob(&repo, &d).await.unwrap();
    assert_eq!(c.head_blob(&repo, &d).await.unwrap(), None);
}

#[tokio::test]
async fn delete_on_a_registry_without_deletion_is_unsupported() {
    let reg = Registry::start_with(Auth::None, false);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/nodelete").unwrap();
    let (bytes, mt) = push_image(&c, &repo, false, "nodelete").await;
    let d = c
        .put_manifest(&repo, &ManifestRef::parse("t").unwrap(), &bytes, &mt)
        .await
        .unwrap();
    let err = c.delete_manifest(&repo, &d).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(err.status().unwrap().as_u16(), 405);
    // Still there.
    assert!(c.head_manifest(&repo, &ManifestRef::Digest(d)).await.unwrap().is_some());
}

#[tokio::test]
async fn blobs_are_mounted_across_repositories_and_existing_ones_skipped() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let a = Repository::new(&reg.host, "wharf/src").unwrap();
    let b = Repository::new(&reg.host, "wharf/dst").unwrap();
    let data = b"shared layer".to_vec();
    let d = Digest::sha256(&data);
    let src = BlobSource::Bytes(std::sync::Arc::new(data.clone()));
    assert_eq!(c.push_blob(&a, &d, 12, &src, None).await.unwrap(), Uploaded::Monolithic);
    assert_eq!(c.push_blob(&a, &d, 12, &src, None).await.unwrap(), Uploaded::Existed);
    assert_eq!(c.head_blob(&b, &d).await.unwrap(), None);
    assert_eq!(
        c.push_blob(&b, &d, 12, &src, Some(&a)).await.unwrap(),
        Uploaded::Mounted
    );
    assert_eq!(c.head_blob(&b, &d).await.unwrap(), Some(12));
    // A mount from a repository without the blob falls back to an upload.
    let other = b"not in src".to_vec();
    let od = Digest::sha256(&other);
    let osrc = BlobSource::Bytes(std::sync::Arc::new(other));
    assert_eq!(
        c.push_blob(&b, &od, 10, &osrc, Some(&a)).await.unwrap(),
        Uploaded::Monolithic
    );
    assert_eq!(c.get_blob_bytes(&b, &od, 100).await.unwrap(), b"not in src");
}

#[tokio::test]
async fn chunked_uploads_from_a_file() {
    let reg = Registry::start(Auth::None);
    let c = common::client(ClientConfig {
        upload_chunk_size: Some(1000),
        ..ClientConfig::default()
    });
    let repo = Repository::new(&reg.host, "wharf/chunks").unwrap();
    let data: Vec<u8> = (0..4500u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = Digest::sha256(&data);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let src = BlobSource::File(std::sync::Arc::new(move || std::fs::File::open(&path)));
    assert_eq!(
        c.push_blob(&repo, &d, data.len() as u64, &src, None).await.unwrap(),
        Uploaded::Chunked(5)
    );
    assert_eq!(c.get_blob_bytes(&repo, &d, 1 << 20).await.unwrap(), data);
    // Monolithic from a file.
    let mono = common::default_client();
    let data2: Vec<u8> = data.iter().rev().copied().collect();
    let d2 = Digest::sha256(&data2);
    let path2 = dir.path().join("blob2");
    std::fs::write(&path2, &data2).unwrap();
    let src2 = BlobSource::File(std::sync::Arc::new(move || std::fs::File::open(&path2)));
    assert_eq!(
        mono.push_blob(&repo, &d2, data2.len() as u64, &src2, None)
            .await
            .unwrap(),
        Uploaded::Monolithic
    );
    assert_eq!(mono.get_blob_bytes(&repo, &d2, 1 << 20).await.unwrap(), data2);
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    // distribution 2.8 has no referrers API: the client falls back to `sha256-<hex>` tags.
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/refs").unwrap();
    let (bytes, mt) = push_image(&c, &repo, false, "refs").await;
    let subject = c
        .put_manifest(&repo, &ManifestRef::parse("v1").unwrap(), &bytes, &mt)
        .await
        .unwrap();
    let none = c.referrers(&repo, &subject, None).await.unwrap();
    assert!(none.manifests().is_empty());

    // Two artifacts (real manifests, so the registry accepts an index of them).
    let (sig_bytes, sig_mt) = push_image(&c, &repo, false, "sig").await;
    let sig = c
        .put_manifest(&repo, &ManifestRef::parse("sig").unwrap(), &sig_bytes, &sig_mt)
        .await
        .unwrap();
    let (sbom_bytes, _) = push_image(&c, &repo, false, "sbom").await;
    let sbom = c
        .put_manifest(&repo, &ManifestRef::parse("sbom").unwrap(), &sbom_bytes, &sig_mt)
        .await
        .unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":{},"digest":"{sig}","artifactType":"application/vnd.example.sig"}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":{},"digest":"{sbom}","artifactType":"application/vnd.example.sbom"}}]}}"#,
        sig_bytes.len(),
        sbom_bytes.len()
    );
    let tag = ManifestRef::parse(&format!("sha256-{}", subject.hex())).unwrap();
    c.put_manifest(&repo, &tag, index.as_bytes(), "application/vnd.oci.image.index.v1+json")
        .await
        .unwrap();
    let all = c.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(all.manifests().len(), 2);
    let sigs = c
        .referrers(&repo, &subject, Some("application/vnd.example.sig"))
        .await
        .unwrap();
    assert_eq!(sigs.manifests().len(), 1);
    assert_eq!(sigs.manifests()[0].digest().to_string(), sig.to_string());
}

#[tokio::test]
async fn pushing_a_manifest_with_a_subject_maintains_the_referrers_tag() {
    let reg = Registry::start(Auth::None);
    let c = default_client();
    let repo = Repository::new(&reg.host, "wharf/subject").unwrap();
    let (bytes, mt) = push_image(&c, &repo, false, "subject").await;
    let subject = c
        .put_manifest(&repo, &ManifestRef::parse("v1").unwrap(), &bytes, &mt)
        .await
        .unwrap();

    // An artifact: empty config, one blob, `subject` pointing at the image.
    let empty = c.push_blob_bytes(&repo, b"{}".to_vec()).await.unwrap();
    let sig = c.push_blob_bytes(&repo, b"signature bytes".to_vec()).await.unwrap();
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"{empty}"}},"layers":[{{"mediaType":"application/octet-stream","size":15,"digest":"{sig}"}}],"subject":{{"mediaType":"{mt}","size":{},"digest":"{subject}"}},"annotations":{{"org.example":"yes"}}}}"#,
        bytes.len()
    );
    let ad = c
        .put_manifest(
            &repo,
            &ManifestRef::Digest(Digest::sha256(artifact.as_bytes())),
            artifact.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    let refs = c.referrers(&repo, &subject, None).await.unwrap();
    assert_eq!(refs.manifests().len(), 1);
    let d = &refs.manifests()[0];
    assert_eq!(d.digest().to_string(), ad.to_string());
    assert_eq!(d.size(), artifact.len() as u64);
    assert_eq!(
        d.artifact_type().as_ref().unwrap().to_string(),
        "application/vnd.example.sig"
    );
    assert_eq!(d.annotations().as_ref().unwrap()["org.example"], "yes");
    // Pushing it again does not duplicate the entry.
    c.put_manifest(
        &repo,
        &ManifestRef::parse("sig").unwrap(),
        artifact.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await
    .unwrap();
    assert_eq!(c.referrers(&repo, &subject, None).await.unwrap().manifests().len(), 1);
}
