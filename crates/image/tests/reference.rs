//! Reference parsing against the distribution reference grammar and Docker's normalisation.
#![allow(clippy::unwrap_used)]

use wharf_image::{Digest, DigestError, Reference, ReferenceError};

const SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const SHA512: &str = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

/// input, registry, repository, tag, digest
type Case = (String, &'static str, String, Option<String>, Option<&'static str>);

fn valid_cases() -> Vec<Case> {
    let long_tag = format!("v{}", "1".repeat(127));
    // docker.io/ (10) + library/ (8) + 237 = 255
    let longest = "a".repeat(237);
    let mut cases: Vec<Case> = [
        ("nginx", "docker.io", "library/nginx", Some("latest"), None),
        ("nginx:1.25", "docker.io", "library/nginx", Some("1.25"), None),
        ("library/nginx", "docker.io", "library/nginx", Some("latest"), None),
        (
            "docker.io/library/nginx:latest",
            "docker.io",
            "library/nginx",
            Some("latest"),
            None,
        ),
        ("docker.io/nginx", "docker.io", "library/nginx", Some("latest"), None),
        (
            "index.docker.io/nginx",
            "docker.io",
            "library/nginx",
            Some("latest"),
            None,
        ),
        ("index.docker.io/user/app:v2", "docker.io", "user/app", Some("v2"), None),
        ("user/app", "docker.io", "user/app", Some("latest"), None),
        ("localhost:5000/a/b:tag", "localhost:5000", "a/b", Some("tag"), None),
        ("localhost/app", "localhost", "app", Some("latest"), None),
        ("localhost", "docker.io", "library/localhost", Some("latest"), None),
        // Without a '/', "localhost:5000" is the Hub image localhost with tag 5000 (as in Docker).
        ("localhost:5000", "docker.io", "library/localhost", Some("5000"), None),
        ("ghcr.io/o/r@SHA256", "ghcr.io", "o/r", None, Some(SHA256)),
        (
            "nginx:1.25@SHA256",
            "docker.io",
            "library/nginx",
            Some("1.25"),
            Some(SHA256),
        ),
        ("nginx@SHA256", "docker.io", "library/nginx", None, Some(SHA256)),
        ("nginx@SHA512", "docker.io", "library/nginx", None, Some(SHA512)),
        ("[::1]:5000/x", "[::1]:5000", "x", Some("latest"), None),
        ("[2001:db8::1]/ns/app:t", "[2001:db8::1]", "ns/app", Some("t"), None),
        ("192.168.1.1:5000/app", "192.168.1.1:5000", "app", Some("latest"), None),
        (
            "example.com/a/b/c/d:v1.0.0-rc.1",
            "example.com",
            "a/b/c/d",
            Some("v1.0.0-rc.1"),
            None,
        ),
        (
            "registry-1.docker.io/library/busybox",
            "registry-1.docker.io",
            "library/busybox",
            Some("latest"),
            None,
        ),
        (
            "a__b/c--d/e.f_g:TAG_Upper",
            "docker.io",
            "a__b/c--d/e.f_g",
            Some("TAG_Upper"),
            None,
        ),
        // An upper-case first element cannot be a namespace, so Docker takes it as a host.
        ("Foo/bar", "Foo", "bar", Some("latest"), None),
        (
            "quay.io/coreos/etcd:v3.5.0",
            "quay.io",
            "coreos/etcd",
            Some("v3.5.0"),
            None,
        ),
        (
            "my-registry.example.com:443/x/y:_tag",
            "my-registry.example.com:443",
            "x/y",
            Some("_tag"),
            None,
        ),
        ("0/1", "docker.io", "0/1", Some("latest"), None),
        (
            "example.com:8080/a-----b",
            "example.com:8080",
            "a-----b",
            Some("latest"),
            None,
        ),
        (
            "docker.io/library/ubuntu/nested",
            "docker.io",
            "library/ubuntu/nested",
            Some("latest"),
            None,
        ),
        (
            "localhost:5000/app:v1@SHA256",
            "localhost:5000",
            "app",
            Some("v1"),
            Some(SHA256),
        ),
        // Cases from the distribution project's own normalisation tests.
        ("192.168.0.1", "docker.io", "library/192.168.0.1", Some("latest"), None),
        ("192.168.0.1:80", "docker.io", "library/192.168.0.1", Some("80"), None),
        (
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker.io",
            "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            Some("latest"),
            None,
        ),
        ("DOCKER/docker", "DOCKER", "docker", Some("latest"), None),
        ("test_com/foo", "docker.io", "test_com/foo", Some("latest"), None),
        (
            "xn--n3h.com:18080/foo",
            "xn--n3h.com:18080",
            "foo",
            Some("latest"),
            None,
        ),
        ("dock__er/docker", "docker.io", "dock__er/docker", Some("latest"), None),
        (
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "[fc00:1:2:3:4:5:6:7]:5000",
            "library/debian",
            Some("latest"),
            None,
        ),
    ]
    .into_iter()
    .map(|(i, reg, repo, tag, d)| {
        let i = i.replace("SHA256", SHA256).replace("SHA512", SHA512);
        (i, reg, repo.to_string(), tag.map(str::to_string), d)
    })
    .collect();
    cases.push((
        format!("nginx:{long_tag}"),
        "docker.io",
        "library/nginx".into(),
        Some(long_tag),
        None,
    ));
    cases.push((
        longest.clone(),
        "docker.io",
        format!("library/{longest}"),
        Some("latest".into()),
        None,
    ));
    cases
}

fn kind(e: &ReferenceError) -> &'static str {
    match e {
        ReferenceError::Empty => "Empty",
        ReferenceError::TooLong { .. } => "TooLong",
        ReferenceError::Identifier(_) => "Identifier",
        ReferenceError::Domain { .. } => "Domain",
        ReferenceError::Repository { .. } => "Repository",
        ReferenceError::UppercaseRepository { .. } => "UppercaseRepository",
        ReferenceError::Tag { .. } => "Tag",
        ReferenceError::Digest(_) => "Digest",
    }
}

fn invalid_cases() -> Vec<(String, &'static str)> {
    let mut cases: Vec<(String, &'static str)> = [
        ("", "Empty"),
        (":", "Tag"),
        (":latest", "Repository"),
        ("Nginx", "UppercaseRepository"),
        ("library/Nginx", "UppercaseRepository"),
        ("docker.io/Library/nginx", "UppercaseRepository"),
        ("Foo/Bar", "UppercaseRepository"),
        ("nginx:", "Tag"),
        ("nginx:-bad", "Tag"),
        ("nginx:.bad", "Tag"),
        ("nginx:a+b", "Tag"),
        ("nginx@sha256:abc", "Digest"),
        ("nginx@md5:d41d8cd98f00b204e9800998ecf8427e", "Digest"),
        ("nginx@", "Digest"),
        ("nginx@SHA256@SHA256", "Digest"),
        ("a//b", "Repository"),
        ("a/b/", "Repository"),
        ("/a", "Repository"),
        ("-a", "Repository"),
        ("a-", "Repository"),
        ("a..b", "Repository"),
        ("a___b", "Repository"),
        ("a._b", "Repository"),
        ("a b", "Repository"),
        ("nginx:tag:tag", "Repository"),
        ("example.com/", "Repository"),
        ("example.com/a/-b", "Repository"),
        ("[::1]:5000", "Repository"),
        ("example.com:port/a", "Domain"),
        ("example.com:/a", "Domain"),
        ("example..com/a", "Domain"),
        ("-example.com/a", "Domain"),
        ("ex_ample.com/a", "Domain"),
        ("[::1/a", "Domain"),
        ("[]:5000/a", "Domain"),
        ("[::1]x:5000/a", "Domain"),
        ("localhost:99999/a", "Domain"),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "Identifier",
        ),
        // Cases from the distribution project's own normalisation tests.
        ("https://github.com/docker/docker", "Domain"),
        ("-docker.io/docker/docker", "Domain"),
        ("fc00::1:5000/debian", "Domain"),
        ("[fe80::1%eth0]:5000/debian", "Domain"),
        ("[2001:db8:3:4::192.0.2.33]:5000/debian", "Domain"),
        ("____/____", "Repository"),
        // A first element with '.' is a registry, so here the registry is what is wrong.
        ("dock-.er/docker", "Domain"),
        ("dock-.er", "Repository"),
        ("docker-/docker", "Repository"),
        ("docker.io/docker/Docker", "UppercaseRepository"),
        ("[fc00::1]", "Tag"),
    ]
    .into_iter()
    .map(|(i, k)| (i.replace("SHA256", SHA256), k))
    .collect();
    cases.push((format!("nginx:{}", "t".repeat(129)), "Tag"));
    cases.push(("a".repeat(238), "TooLong"));
    cases.push((format!("example.com/{}", "a/".repeat(122) + "abc"), "TooLong"));
    cases
}

#[test]
fn table_has_at_least_forty_cases() {
    assert!(valid_cases().len() + invalid_cases().len() >= 40);
}

#[test]
fn valid_references_parse_and_normalise() {
    for (input, registry, repository, tag, digest) in valid_cases() {
        let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.tag(), tag.as_deref(), "{input}");
        let digest = digest.map(|d| d.parse::<Digest>().unwrap());
        assert_eq!(r.digest(), digest.as_ref(), "{input}");
        assert_eq!(r.name(), format!("{registry}/{repository}"), "{input}");
    }
}

#[test]
fn invalid_references_name_the_wrong_part() {
    for (input, expected) in invalid_cases() {
        match input.parse::<Reference>() {
            Ok(r) => panic!("{input:?} should be rejected, parsed as {r}"),
            Err(e) => assert_eq!(kind(&e), expected, "{input:?}: {e}"),
        }
    }
}

#[test]
fn display_familiar_and_serde_round_trip() {
    for (input, ..) in valid_cases() {
        let r: Reference = input.parse().unwrap();
        let full = r.to_string();
        assert_eq!(full.parse::<Reference>().unwrap(), r, "display of {input}: {full}");
        assert_eq!(full.parse::<Reference>().unwrap().to_string(), full);
        let familiar = r.familiar();
        assert_eq!(
            familiar.parse::<Reference>().unwrap(),
            r,
            "familiar of {input}: {familiar}"
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{full}\""));
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }
}

#[test]
fn fully_qualified_and_familiar_forms() {
    let cases = [
        ("nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("library/nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25"),
        (
            "index.docker.io/user/app",
            "docker.io/user/app:latest",
            "user/app:latest",
        ),
        (
            "localhost:5000/a/b:tag",
            "localhost:5000/a/b:tag",
            "localhost:5000/a/b:tag",
        ),
        (
            "docker.io/library/ubuntu/nested:1",
            "docker.io/library/ubuntu/nested:1",
            "library/ubuntu/nested:1",
        ),
        (
            &format!("ghcr.io/o/r@{SHA256}"),
            &format!("ghcr.io/o/r@{SHA256}"),
            &format!("ghcr.io/o/r@{SHA256}"),
        ),
        (
            &format!("nginx:1@{SHA256}"),
            &format!("docker.io/library/nginx:1@{SHA256}"),
            &format!("nginx:1@{SHA256}"),
        ),
    ];
    for (input, full, familiar) in cases {
        let r: Reference = input.parse().unwrap();
        assert_eq!(r.to_string(), full, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
    }
    assert!("nginx".parse::<Reference>().unwrap().is_default_registry());
    assert!(!"ghcr.io/o/r".parse::<Reference>().unwrap().is_default_registry());
}

#[test]
fn with_tag_and_with_digest_replace_the_suffix() {
    let r: Reference = format!("nginx:1@{SHA256}").parse().unwrap();
    let t = r.with_tag("2");
    assert_eq!(t.to_string(), "docker.io/library/nginx:2");
    let d = t.with_digest(SHA512.parse().unwrap());
    assert_eq!(d.to_string(), format!("docker.io/library/nginx@{SHA512}"));
    assert_eq!(d.to_string().parse::<Reference>().unwrap(), d);
}

#[test]
fn errors_say_what_is_wrong() {
    let e = "docker.io/Library/nginx".parse::<Reference>().unwrap_err();
    assert_eq!(
        e,
        ReferenceError::UppercaseRepository {
            repository: "Library/nginx".into()
        }
    );
    assert!(e.to_string().contains("must be lowercase"), "{e}");

    let e = "nginx:a+b".parse::<Reference>().unwrap_err();
    assert!(matches!(&e, ReferenceError::Tag { tag, .. } if tag == "a+b"), "{e:?}");
    assert!(e.to_string().contains("'+'"), "{e}");

    let e = "nginx@sha256:abc".parse::<Reference>().unwrap_err();
    assert!(
        matches!(e, ReferenceError::Digest(DigestError::BadHex { expected: 64, .. })),
        "{e:?}"
    );

    let e = "localhost:99999/a".parse::<Reference>().unwrap_err();
    assert!(
        matches!(&e, ReferenceError::Domain { domain, .. } if domain == "localhost:99999"),
        "{e:?}"
    );
    assert!(e.to_string().contains("65535"), "{e}");

    let e = "a".repeat(238).parse::<Reference>().unwrap_err();
    assert!(matches!(e, ReferenceError::TooLong { len: 256, .. }), "{e:?}");

    let e = "a//b".parse::<Reference>().unwrap_err();
    assert!(e.to_string().contains("empty path component"), "{e}");

    assert!(serde_json::from_str::<Reference>("\"Nginx\"").is_err());
}
