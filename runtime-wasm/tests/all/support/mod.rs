//! Helpers shared by the integration tests of the Wasm runtime.

pub mod registry;

/// A valid core module with a custom section carrying `payload`, so each
/// test pushes distinct bytes of the size it wants.
pub fn core_module(payload: &[u8]) -> Vec<u8> {
    fn leb128(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"skiff-test";
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u64);
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(0);
    leb128(&mut module, section.len() as u64);
    module.extend(section);
    module
}
