//! Builds every test program into the testkit's cache directory and prints one line per
//! program: its name and path, or why it did not build. With `PROGLOAD_TESTPROGS_CC` (a cross
//! gcc) and `PROGLOAD_TESTPROGS_DIR` this prepares the programs a test binary of another
//! architecture takes with `PROGLOAD_TESTPROGS_PREBUILT` (the kernel farm's guests).
//! Exits 1 if a program named on the command line did not build.

use progload_testkit::progs::{self, Prog};

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let mut failed = false;
    for prog in Prog::ALL {
        match progs::build(prog) {
            Ok(path) => println!("{} {}", prog.name(), path.display()),
            Err(e) => {
                println!("{} not built: {e}", prog.name());
                failed |= wanted.iter().any(|w| w == prog.name());
            }
        }
    }
    std::process::exit(i32::from(failed));
}
