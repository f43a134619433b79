//! The smallest skiff workload: a WASI 0.2 command component that prints a
//! greeting, its arguments and the `GREETING` environment variable (when
//! set), then exits 0. Pods use it to check that args, env and stdout reach
//! the guest and its logs.

fn main() {
    println!("hello from skiff");
    for (index, arg) in std::env::args().enumerate().skip(1) {
        println!("arg[{index}]: {arg}");
    }
    if let Ok(greeting) = std::env::var("GREETING") {
        println!("GREETING: {greeting}");
    }
}
