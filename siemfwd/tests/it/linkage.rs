//! The binary links nothing but the C runtime (issue 17): glibc (`libc`, `libm`, the
//! loader) and `libgcc_s`, the unwinder every Rust program for a GNU target uses — no
//! OpenSSL (TLS is rustls), no zlib, no libstdc++ (zstd and lz4 are built in), nothing a
//! package would have to depend on beyond `libc6`. Checked on the binary this test run
//! built, whose dependencies are the release build's.

use crate::support;

#[test]
fn the_binary_links_only_the_c_runtime() {
    let Ok(out) = std::process::Command::new("ldd")
        .arg(support::siemfwd::binary())
        .output()
    else {
        panic!("ldd is not installed (it comes with libc-bin)");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let allowed = [
        "linux-vdso.so",
        "libc.so",
        "libm.so",
        "ld-linux",
        "libgcc_s.so",
    ];
    let linked: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(linked.iter().any(|l| l.starts_with("libc.so")), "{text}");
    let other: Vec<&&str> = linked
        .iter()
        .filter(|l| !allowed.iter().any(|a| l.contains(a)))
        .collect();
    assert!(
        other.is_empty(),
        "linked beyond the C runtime: {other:?}\n{text}"
    );
}
