//! Test support: compile generated CUDA sources with NVRTC on a machine without a GPU
//! (NVRTC from a CUDA toolkit or the `nvidia-cuda-nvrtc` wheel on the library path,
//! headers under `CUDA_HOME`), so a change to a kernel's source is at least compiled
//! before it reaches a GPU. Where NVRTC cannot be loaded the checks say so and pass.

use crate::kernels::include_paths;

/// Compiles `src` for sm_90; None when NVRTC cannot be loaded.
pub(crate) fn compile(src: &str) -> Option<Result<(), String>> {
    let opts = cudarc::nvrtc::CompileOptions {
        include_paths: include_paths(),
        options: vec!["--gpu-architecture=sm_90".into(), "--std=c++17".into()],
        ..Default::default()
    };
    let src = src.to_string();
    // cudarc panics when the library is missing (dynamic loading): that is "not here"
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(move || cudarc::nvrtc::compile_ptx_with_opts(src, opts));
    std::panic::set_hook(hook);
    r.ok().map(|r| r.map(|_| ()).map_err(|e| format!("{e:?}")))
}

/// Compiles `src` (panicking with the log when it does not compile); false when NVRTC
/// is not there.
pub(crate) fn check(name: &str, src: Option<String>) -> bool {
    let src = src.unwrap_or_else(|| panic!("{name}: no source"));
    match compile(&src) {
        None => {
            eprintln!("NVRTC not found: the CUDA sources were not compiled");
            false
        }
        Some(Err(e)) => panic!("{name} does not compile: {e}\n{src}"),
        Some(Ok(())) => true,
    }
}
