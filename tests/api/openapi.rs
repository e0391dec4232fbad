//! The OpenAPI document covers every route the server answers.

/// Each `(method, path)` of the router appears under `paths:` of `api-docs/openapi.yaml`.
#[test]
fn every_route_is_in_the_openapi_document() {
    let spec = voicepaas::api::OPENAPI_YAML;
    assert!(spec.starts_with("openapi: 3.1"), "OpenAPI 3.1 document");
    let documented = documented_operations(spec);
    let mut missing = Vec::new();
    for (method, path) in voicepaas::api::routes() {
        let op = (method.as_str().to_ascii_lowercase(), path.to_string());
        if !documented.contains(&op) {
            missing.push(format!("{} {path}", method));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from api-docs/openapi.yaml: {missing:#?}"
    );
}

/// `(method, path)` pairs under `paths:`: a path is a two-space-indented key starting with
/// `/`, its operations four-space-indented HTTP method keys.
fn documented_operations(spec: &str) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  /") {
            current = Some(format!("/{}", rest.trim_end().trim_end_matches(':')));
        } else if let (Some(path), Some(rest)) = (&current, line.strip_prefix("    "))
            && let Some(method) = rest
                .strip_suffix(':')
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(m))
        {
            ops.push((method.to_string(), path.clone()));
        }
    }
    ops
}

#[test]
fn the_scanner_reads_paths() {
    let spec = "openapi: 3.1.0\npaths:\n  /a/{X}:\n    get:\n      summary: x\n    post:\n  /b:\n    delete:\ncomponents:\n  /c:\n    get:\n";
    assert_eq!(
        documented_operations(spec),
        vec![
            ("get".into(), "/a/{X}".into()),
            ("post".into(), "/a/{X}".into()),
            ("delete".into(), "/b".into())
        ]
    );
}

/// `api-docs/REFERENCE.md` (generated from the OpenAPI document by `api-docs/reference.py`)
/// has a section for each route, so it cannot fall behind the router unnoticed.
#[test]
fn every_route_is_in_the_reference_page() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/api-docs/REFERENCE.md"
    ))
    .expect("api-docs/REFERENCE.md");
    let missing: Vec<String> = voicepaas::api::routes()
        .into_iter()
        .map(|(method, path)| format!("## {method} {path}"))
        .filter(|heading| !reference.lines().any(|l| l == heading))
        .collect();
    assert!(
        missing.is_empty(),
        "regenerate api-docs/REFERENCE.md (python3 api-docs/reference.py): {missing:#?}"
    );
}
