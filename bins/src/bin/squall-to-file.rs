//! squall-to-file: a drop-in for nsq_to_file. Takes nsq_to_file's flags (Go `flag` syntax) and
//! writes topics to files; see `squall::to_file`.

fn main() {
    let hostname = squall::config::os_hostname();
    let opts = match squall::to_file::parse_args(std::env::args_os(), &hostname) {
        Ok(o) => o,
        Err(e) => e.exit(),
    };
    if opts.print_version {
        println!("{}", squall::to_file::VERSION_LINE);
        return;
    }
    std::process::exit(squall::to_file::run(opts));
}
