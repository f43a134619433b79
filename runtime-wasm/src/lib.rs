//! The Wasm runtime: components and core modules in wasmtime behind the
//! runtime trait of `skiff-sdk`.
