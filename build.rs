// Why: rust-embed needs `web/dist` to exist at compile time. A clean clone has not built the
// web app yet; an empty folder makes the server say so at run time instead of failing to
// compile.
fn main() {
    let dist = std::path::Path::new("web/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(dist);
    }
    println!("cargo:rerun-if-changed=web/dist");
}
