//! Writing benchmark results into BENCHMARKS.md.

/// Replaces (or appends) the section between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->` in a markdown file.
pub fn write_section(path: &str, name: &str, body: &str) {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nNumbers from `make bench`, newest run of each benchmark.\n".into()
    });
    let block = format!("{start}\n{body}{end}");
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{block}{}", &existing[..s], &existing[e + end.len()..])
        }
        _ => format!("{}\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, updated).expect("write benchmark results");
}
