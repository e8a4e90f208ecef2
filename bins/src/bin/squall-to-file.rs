//! squall-to-file: a drop-in for nsq_to_file. Takes nsq_to_file's flags (Go `flag` syntax), or
//! the same keys in a TOML `--config` file (a Squall addition), and writes topics to files; see
//! `squall::to_file`.

use squall::config::{file, keys};
use squall::logging::{self, Level};
use squall::to_file::ArgsError;

fn main() {
    let argv = match file::args_with_config_file(std::env::args_os().collect(), &keys::NSQ_TO_FILE) {
        Ok(argv) => argv,
        Err(e) => {
            logging::init(keys::NSQ_TO_FILE.default_log_prefix, Level::Info);
            squall::log_fatal!("{e}")
        }
    };
    let hostname = squall::config::os_hostname();
    let opts = match squall::to_file::parse_args(argv, &hostname) {
        Ok(o) => o,
        Err(ArgsError::Usage(e)) => e.exit(),
        Err(ArgsError::Fatal(msg)) => squall::to_file::std_log_fatal(&msg),
    };
    if opts.print_version {
        println!("{}", squall::to_file::VERSION_LINE);
        return;
    }
    std::process::exit(squall::to_file::run(opts));
}
