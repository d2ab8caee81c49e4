// stdout goes through `s4::out!`: println! panics on a closed pipe (`s4 --help | head -1`).
#![deny(clippy::print_stdout)]
use argh::FromArgs;
use s4::cli::{normalize, Cli};
use s4::commands;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cmd = "s4";
    let rest = normalize(&args[1.min(args.len())..]);
    let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&[cmd], &refs) {
        Ok(c) => c,
        Err(early) => {
            // --help goes to stdout with 0; usage errors to stderr with 2.
            match early.status {
                Ok(()) => s4::out!("{}", early.output),
                Err(()) => eprintln!("{}", early.output),
            }
            std::process::exit(if early.status.is_ok() { 0 } else { 2 });
        }
    };
    let Some(level) = s4::log::Level::parse(&cli.log_level) else {
        eprintln!("--log-level {}: choose DEBUG, INFO, WARNING or ERROR", cli.log_level);
        std::process::exit(2);
    };
    // -q keeps warnings and errors; a level asked for explicitly above that still wins.
    let level = if cli.quiet { level.max(s4::log::Level::Warning) } else { level };
    s4::log::init(level, !cli.no_colors, cli.timestamps);
    s4::log::set_verbosity(cli.quiet, cli.verbose);
    let Some(command) = cli.command else {
        let help = Cli::from_args(&[cmd], &["--help"]).err().map(|e| e.output).unwrap_or_default();
        s4::out!("s4 {}\n\n{help}", s4::VERSION);
        std::process::exit(0);
    };
    let path = s4::config::default_path(&s4::s3::credentials::process_env);
    let code = match commands::run(command, path) {
        Ok(code) => code,
        Err(e) => {
            s4::error!("{e}");
            commands::FAILED
        }
    };
    std::process::exit(code);
}
