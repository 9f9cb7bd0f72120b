//! A manifest file as `clusterscale plan/apply/simulate -f` reads it
//! (`manifest::parse`, then the controller's own rules).
//!
//! Invariants beyond "no panic":
//! - a parse error is a non-empty message; one of unknown fields names at
//!   least one field, each in the message, and never the known top-level
//!   `apiVersion`, `kind` or `status`;
//! - a parsed ScaledCluster survives a YAML round trip unchanged (what the
//!   CLI read is what it would write), and so does its validation verdict;
//! - every violation names a `spec` field, and `describe` lists them all.
#![no_main]

use clusterscale_core::api::validate::{describe, validate_spec};
use clusterscale_core::manifest::{parse, ParseError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            if let ParseError::UnknownFields { fields, .. } = &e {
                assert!(!fields.is_empty(), "{e:?}");
                for f in fields {
                    assert!(message.contains(f.as_str()), "{f} not in {message}");
                    assert!(!["apiVersion", "kind", "status"].contains(&f.as_str()), "{e:?}");
                }
            }
        }
        Ok(cluster) => {
            let violations = validate_spec(&cluster.spec);
            for v in &violations {
                assert!(v.field.starts_with("spec"), "{v:?}");
                assert!(!v.message.is_empty(), "{v:?}");
            }
            let line = describe(&violations);
            assert_eq!(line.is_empty(), violations.is_empty());
            for v in &violations {
                assert!(line.contains(v.field));
            }
            let yaml = serde_yaml_ng::to_string(&cluster).expect("a parsed manifest serialises");
            let again = parse(&yaml)
                .unwrap_or_else(|e| panic!("the round trip does not parse: {e}\n{yaml}"));
            assert_eq!(
                again.spec, cluster.spec,
                "round trip changed the spec:\n{yaml}"
            );
            assert_eq!(again.metadata.name, cluster.metadata.name);
            assert_eq!(validate_spec(&again.spec), violations);
        }
    }
});
