//! The layering ARCHITECTURE.md promises, kept by a test: every crate's manifest is read
//! and any dependency the architecture forbids fails it, naming the crate, the dependency
//! and the rule.

use std::path::Path;

/// Which table of a manifest a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[dependencies]`: part of the crate itself.
    Normal,
    /// `[build-dependencies]`.
    Build,
    /// `[dev-dependencies]`: tests and benches only.
    Dev,
}

/// One declared dependency, by its real crate name (after `package = ...` renames).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dependency {
    name: String,
    kind: Kind,
}

/// Names a set of crates.
#[derive(Debug, Clone, Copy)]
enum Crates {
    /// Exactly this crate.
    Named(&'static str),
    /// Every crate whose name starts with this.
    Prefixed(&'static str),
    /// Every crate any of these names.
    AnyOf(&'static [Crates]),
}

impl Crates {
    fn matches(self, name: &str) -> bool {
        match self {
            Crates::Named(exact) => name == exact,
            Crates::Prefixed(prefix) => name.starts_with(prefix),
            Crates::AnyOf(sets) => sets.iter().any(|set| set.matches(name)),
        }
    }
}

/// The crates that are a storage backend.
const BACKENDS: Crates = Crates::Prefixed("strata-store-");
/// The crates of the reference shop and its HTTP module.
const SHOP: Crates = Crates::Prefixed("strata-shop");
/// The crates of the example bank and its HTTP module.
const BANK: Crates = Crates::Prefixed("strata-bank");
/// The crates of a domain.
const DOMAINS: Crates = Crates::AnyOf(&[SHOP, BANK]);
/// Every kind of dependency.
const ANY: &[Kind] = &[Kind::Normal, Kind::Build, Kind::Dev];
/// What the crate itself is built with (a backend in its tests is fine).
const BUILT_WITH: &[Kind] = &[Kind::Normal, Kind::Build];

/// A dependency ARCHITECTURE.md forbids.
struct Rule {
    who: Crates,
    must_not_use: Crates,
    kinds: &'static [Kind],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        who: Crates::Named("strata-server"),
        must_not_use: DOMAINS,
        kinds: ANY,
        why: "the server is a generic host and depends on no domain",
    },
    Rule {
        who: Crates::Named("strata-core"),
        must_not_use: Crates::Prefixed("strata-"),
        kinds: ANY,
        why: "strata-core is the words of the model: no storage, no I/O",
    },
    Rule {
        who: Crates::Named("strata-store"),
        must_not_use: BACKENDS,
        kinds: ANY,
        why: "the store's contract knows nothing of files or SQL",
    },
    Rule {
        who: BACKENDS,
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "a backend builds on strata-store alone, never on another backend",
    },
    Rule {
        who: Crates::Named("strata-server"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "the server runs on the EventStore trait; the binary picks the backend",
    },
    Rule {
        who: Crates::Named("strata-projection"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "the read side runs on the EventStore trait, not on a backend",
    },
    Rule {
        who: Crates::Named("strata-domain"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "the command side runs on the EventStore trait, not on a backend",
    },
    Rule {
        who: Crates::Named("strata-shop"),
        must_not_use: Crates::Named("strata-server"),
        kinds: ANY,
        why: "the shop knows nothing of HTTP; its routes live in strata-shop-http",
    },
    Rule {
        who: Crates::Named("strata-shop"),
        must_not_use: Crates::Named("strata-shop-http"),
        kinds: ANY,
        why: "the shop knows nothing of HTTP; its routes live in strata-shop-http",
    },
    Rule {
        who: Crates::Named("strata-shop"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "a domain is built on the public APIs, whichever backend runs it",
    },
    Rule {
        who: Crates::Named("strata-bank"),
        must_not_use: Crates::Named("strata-server"),
        kinds: ANY,
        why: "the bank knows nothing of HTTP; its routes live in strata-bank-http",
    },
    Rule {
        who: Crates::Named("strata-bank"),
        must_not_use: Crates::Named("strata-bank-http"),
        kinds: ANY,
        why: "the bank knows nothing of HTTP; its routes live in strata-bank-http",
    },
    Rule {
        who: Crates::Named("strata-bank"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "a domain is built on the public APIs, whichever backend runs it",
    },
    Rule {
        who: SHOP,
        must_not_use: BANK,
        kinds: ANY,
        why: "a domain stands on strata's public APIs, never on another domain",
    },
    Rule {
        who: BANK,
        must_not_use: SHOP,
        kinds: ANY,
        why: "a domain stands on strata's public APIs, never on another domain",
    },
    Rule {
        who: Crates::Named("strata-relay"),
        must_not_use: BACKENDS,
        kinds: BUILT_WITH,
        why: "a relay reads the log through the EventStore trait, not from a backend",
    },
    Rule {
        who: Crates::Named("strata-relay"),
        must_not_use: DOMAINS,
        kinds: ANY,
        why: "a relay carries every event as bytes and knows no domain",
    },
    Rule {
        who: Crates::Named("strata-relay"),
        must_not_use: Crates::Named("strata-server"),
        kinds: ANY,
        why: "relays know nothing of HTTP",
    },
];

/// The package name and the dependencies of a manifest.
fn read_manifest(text: &str) -> Result<(String, Vec<Dependency>), String> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let name = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or("no package name")?
        .to_owned();
    let mut tables = Vec::new();
    dependency_tables(doc.as_item(), &mut tables);
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table_like()) {
        for (_, target) in targets.iter() {
            dependency_tables(target, &mut tables);
        }
    }
    let mut dependencies = Vec::new();
    for (kind, item) in tables {
        let table = item
            .as_table_like()
            .ok_or_else(|| format!("{kind:?} dependencies are not a table"))?;
        for (key, spec) in table.iter() {
            // `alias = { package = "real-name", ... }` depends on real-name.
            let real = spec
                .as_table_like()
                .and_then(|t| t.get("package"))
                .and_then(|p| p.as_str())
                .unwrap_or(key);
            dependencies.push(Dependency {
                name: real.to_owned(),
                kind,
            });
        }
    }
    Ok((name, dependencies))
}

/// The dependency tables of `table` (the manifest, or one `[target.'cfg'.*]`).
fn dependency_tables<'a>(table: &'a toml_edit::Item, out: &mut Vec<(Kind, &'a toml_edit::Item)>) {
    for (key, kind) in [
        ("dependencies", Kind::Normal),
        ("build-dependencies", Kind::Build),
        ("dev-dependencies", Kind::Dev),
    ] {
        if let Some(item) = table.get(key) {
            out.push((kind, item));
        }
    }
}

/// Every dependency of `krate` that a rule forbids, as a sentence.
fn violations(krate: &str, dependencies: &[Dependency]) -> Vec<String> {
    let mut found = Vec::new();
    for rule in RULES.iter().filter(|r| r.who.matches(krate)) {
        for dependency in dependencies {
            if dependency.name != krate
                && rule.must_not_use.matches(&dependency.name)
                && rule.kinds.contains(&dependency.kind)
            {
                found.push(format!(
                    "{krate} depends on {} ({:?}): {}",
                    dependency.name, dependency.kind, rule.why
                ));
            }
        }
    }
    found
}

#[test]
fn no_crate_depends_on_what_the_architecture_forbids() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/ holds this crate");
    let mut checked = Vec::new();
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(crates).expect("crates/ is readable") {
        let manifest = entry.expect("a directory entry").path().join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).expect("the manifest is readable");
        let (name, dependencies) = read_manifest(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", manifest.display()));
        broken.extend(violations(&name, &dependencies));
        checked.push(name);
    }
    checked.sort();
    for expected in [
        "strata-core",
        "strata-store",
        "strata-domain",
        "strata-projection",
        "strata-relay",
        "strata-server",
        "strata-shop",
        "strata-shop-http",
        "strata-bank",
        "strata-bank-http",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} was not found among {checked:?}"
        );
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_finds_forbidden_dependencies_however_they_are_declared() {
    let server = r#"
        [package]
        name = "strata-server"

        [dependencies]
        strata-core.workspace = true
        strata-store = { workspace = true }

        [target.'cfg(unix)'.dependencies]
        domain = { package = "strata-shop", path = "../strata-shop" }

        [dev-dependencies.strata-shop-http]
        path = "../strata-shop-http"
    "#;
    let (name, dependencies) = read_manifest(server).unwrap();
    assert_eq!(name, "strata-server");
    let found = violations(&name, &dependencies);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().any(|v| v.contains("strata-shop (Normal)")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|v| v.contains("strata-shop-http (Dev)")),
        "{found:#?}"
    );

    let core = "[package]\nname = \"strata-core\"\n[dependencies]\nstrata-store.workspace = true\n";
    let (name, dependencies) = read_manifest(core).unwrap();
    assert_eq!(violations(&name, &dependencies).len(), 1);

    // A backend in a projection's tests is fine; in the crate itself it is not.
    let projection = "[package]\nname = \"strata-projection\"\n\
        [dependencies]\nstrata-store.workspace = true\n\
        [dev-dependencies]\nstrata-store-embedded.workspace = true\n";
    let (name, dependencies) = read_manifest(projection).unwrap();
    assert!(violations(&name, &dependencies).is_empty());
    let built_on_a_backend = projection.replace("[dev-dependencies]", "[build-dependencies]");
    let (name, dependencies) = read_manifest(&built_on_a_backend).unwrap();
    assert_eq!(violations(&name, &dependencies).len(), 1);

    let shop = "[package]\nname = \"strata-shop\"\n[dev-dependencies]\nstrata-server = \"0.1\"\n";
    let (name, dependencies) = read_manifest(shop).unwrap();
    assert_eq!(violations(&name, &dependencies).len(), 1);

    // The bank is held to the shop's rules, and neither domain builds on the other.
    let bank = "[package]\nname = \"strata-bank\"\n\
        [dependencies]\nstrata-server.workspace = true\nstrata-store-embedded.workspace = true\n\
        [dev-dependencies]\nstrata-shop.workspace = true\n";
    let (name, dependencies) = read_manifest(bank).unwrap();
    assert_eq!(violations(&name, &dependencies).len(), 3);
    let server =
        "[package]\nname = \"strata-server\"\n[dev-dependencies]\nstrata-bank-http = \"0.1\"\n";
    let (name, dependencies) = read_manifest(server).unwrap();
    assert_eq!(violations(&name, &dependencies).len(), 1);
}
