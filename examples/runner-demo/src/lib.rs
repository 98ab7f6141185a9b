//! What a tracing tool's own test suite would check first: tracefs is there and lists tracers.

/// The tracers the running kernel offers, from tracefs.
pub fn available_tracers() -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string("/sys/kernel/tracing/available_tracers")?;
    Ok(text.split_whitespace().map(str::to_string).collect())
}
