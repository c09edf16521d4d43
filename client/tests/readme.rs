//! The README's Rust snippets are compiled as `examples/readme.rs`: each
//! snippet must be found there verbatim (line for line, leading spaces
//! aside, and the example's `#[rustfmt::skip]` lines), so a README edit that is not carried over fails here.

#[test]
fn every_readme_snippet_is_in_the_compiled_example() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{dir}/examples/readme.rs")).unwrap();
    // The example keeps rustfmt off its items (it would re-wrap them).
    let ex: Vec<&str> = example
        .lines()
        .map(str::trim)
        .filter(|l| *l != "#[rustfmt::skip]")
        .collect();
    let mut blocks = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("unclosed rust block");
        let lines: Vec<&str> = body[..end].lines().map(str::trim).collect();
        let found = ex.windows(lines.len()).any(|w| w == lines.as_slice());
        assert!(
            found,
            "README snippet not in examples/readme.rs:\n{}",
            &body[..end]
        );
        blocks += 1;
        rest = &body[end + 3..];
    }
    assert_eq!(
        blocks, 8,
        "README rust blocks (update this count with the README)"
    );
}
