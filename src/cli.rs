//! The command line: S4's commands, aliases and global flags, plus flags for every prompt.

use argh::{ArgsInfo, FromArgs};

/// Fast and cheap synchronisation of files with Amazon S3 (and S3-compatible stores).
/// To start off, add a Target with the "add" command.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(help_triggers("-h", "--help", "help"))]
pub struct Cli {
    /// log level: DEBUG, INFO (default), WARNING or ERROR
    #[argh(option, default = "String::from(\"INFO\")")]
    pub log_level: String,
    /// display without colors
    #[argh(switch)]
    pub no_colors: bool,
    /// display timestamps for each log message (the daemon's default)
    #[argh(switch)]
    pub timestamps: bool,
    /// quiet: no progress display, action lines or summary; warnings and errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// verbose: one line per action even when the progress display is on
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum Command {
    Sync(SyncCmd),
    Daemon(DaemonCmd),
    Add(AddCmd),
    Edit(EditCmd),
    Targets(TargetsCmd),
    Rm(RmCmd),
    Ls(LsCmd),
    Versions(VersionsCmd),
    Restore(RestoreCmd),
    Bench(BenchCmd),
    Status(StatusCmd),
    Completions(CompletionsCmd),
    Man(ManCmd),
    Doctor(DoctorCmd),
    Version(VersionCmd),
}

/// Synchronise Targets with S3 (alias: s)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "sync", help_triggers("-h", "--help", "help"))]
pub struct SyncCmd {
    /// targets to sync (default: all, sorted)
    #[argh(positional)]
    pub targets: Vec<String>,
    /// settle conflicts without asking: 1 keeps local, 2 keeps S3, keep-both keeps the local copy beside S3's, ignore skips them
    #[argh(option)]
    pub conflicts: Option<String>,
    /// show what would be done; change nothing, never prompt
    #[argh(switch)]
    pub dry_run: bool,
    /// one JSON object per action (and a summary) on stdout
    #[argh(switch)]
    pub json: bool,
    /// transfers in flight at once (default 64)
    #[argh(option, default = "64")]
    pub jobs: usize,
    /// follow symlinks that point inside the local folder
    #[argh(switch)]
    pub follow_symlinks: bool,
    /// stop before deleting more than this share (50%) or number (50) of either side's files (default 50%)
    #[argh(option, default = "String::from(\"50%\")")]
    pub max_delete: String,
    /// carry out deletions the guards would stop (--max-delete, an emptied side)
    #[argh(switch)]
    pub force: bool,
    /// leave files matching this pattern alone this run (.syncignore syntax; repeatable)
    #[argh(option)]
    pub exclude: Vec<String>,
    /// take files matching this pattern even if excluded (.syncignore's `!PATTERN`; repeatable)
    #[argh(option)]
    pub include: Vec<String>,
    /// bytes per second for all uploads together, and as much for downloads: 500K, 10M, 1G (powers of 1024; a bare number is KiB/s; 0: no limit)
    #[argh(option)]
    pub bwlimit: Option<String>,
}

/// Run S4 sync continuously (alias: d)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "daemon", help_triggers("-h", "--help", "help"))]
pub struct DaemonCmd {
    /// targets to watch (default: all)
    #[argh(positional)]
    pub targets: Vec<String>,
    /// milliseconds to wait for more local changes before syncing (default 1000)
    #[argh(option, default = "1000")]
    pub read_delay: u64,
    /// conflict choice: 1, 2, keep-both or ignore (default keep-both: nothing waits for ever)
    #[argh(option, default = "String::from(\"keep-both\")")]
    pub conflicts: String,
    /// seconds between checks of S3 for remote changes: one conditional GET of the remote index (default 30)
    #[argh(option, default = "30")]
    pub poll: u64,
    /// minutes between full syncs (a scan and a listing), which find what other tools changed on S3; 0: at every poll (default 60)
    #[argh(option, default = "60")]
    pub full_every: u64,
    /// transfers in flight at once (default 64)
    #[argh(option, default = "64")]
    pub jobs: usize,
    /// stop before deleting more than this share or number of either side's files (default 50%)
    #[argh(option, default = "String::from(\"50%\")")]
    pub max_delete: String,
    /// one JSON object per event on stdout, as `sync --json`
    #[argh(switch)]
    pub json: bool,
    /// bytes per second for all uploads together, and as much for downloads: 500K, 10M, 1G (powers of 1024; a bare number is KiB/s; 0: no limit)
    #[argh(option)]
    pub bwlimit: Option<String>,
}

/// Add a new Target to synchronise (alias: a); flags answer the prompts
#[derive(FromArgs, ArgsInfo, Debug, Default)]
#[argh(subcommand, name = "add", help_triggers("-h", "--help", "help"))]
pub struct AddCmd {
    /// copy credentials from an existing target instead of typing them in again
    #[argh(option, short = 'C')]
    pub copy_target_credentials: Option<String>,
    #[argh(option)]
    /// local folder to sync (default: the current folder)
    pub local_folder: Option<String>,
    /// s3://BUCKET/PREFIX
    #[argh(option)]
    pub s3_uri: Option<String>,
    /// endpoint url of an S3-compatible store (default: AWS)
    #[argh(option)]
    pub endpoint_url: Option<String>,
    /// region name
    #[argh(option)]
    pub region: Option<String>,
    /// target name (default: the last part of the S3 path)
    #[argh(option)]
    pub name: Option<String>,
    /// access key id (omit, with no secret, to use the AWS credential chain)
    #[argh(option)]
    pub access_key_id: Option<String>,
    /// read the secret access key from the first line of stdin
    #[argh(switch)]
    pub secret_access_key_stdin: bool,
    /// create the local folder if it does not exist
    #[argh(switch)]
    pub create: bool,
    /// save without first checking that the endpoint, bucket and keys work
    #[argh(switch)]
    pub no_check: bool,
}

/// Edit Target details (alias: e); flags change fields without prompting
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "edit", help_triggers("-h", "--help", "help"))]
pub struct EditCmd {
    #[argh(positional)]
    pub target: String,
    /// local folder
    #[argh(option)]
    pub local_folder: Option<String>,
    /// s3://BUCKET/PREFIX
    #[argh(option)]
    pub s3_uri: Option<String>,
    /// endpoint url
    #[argh(option)]
    pub endpoint_url: Option<String>,
    /// region name
    #[argh(option)]
    pub region: Option<String>,
    /// access key id
    #[argh(option)]
    pub access_key_id: Option<String>,
    /// read the secret access key from the first line of stdin
    #[argh(switch)]
    pub secret_access_key_stdin: bool,
    /// create the local folder if it does not exist
    #[argh(switch)]
    pub create: bool,
    /// save without first checking that the endpoint, bucket and keys work
    #[argh(switch)]
    pub no_check: bool,
}

/// Print available Targets (alias: t)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "targets", help_triggers("-h", "--help", "help"))]
pub struct TargetsCmd {}

/// Remove a Target (the files stay)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "rm", help_triggers("-h", "--help", "help"))]
pub struct RmCmd {
    #[argh(positional)]
    pub target: String,
    /// do not ask for confirmation (needed without a terminal)
    #[argh(switch, short = 'y')]
    pub yes: bool,
}

/// Display list of files for a Target
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "ls", help_triggers("-h", "--help", "help"))]
pub struct LsCmd {
    #[argh(positional)]
    pub target: String,
    /// sort by key, local or s3 (default key)
    #[argh(option, short = 's', default = "String::from(\"key\")")]
    pub sort_by: String,
    /// sort descending
    #[argh(switch, short = 'd')]
    pub descending: bool,
    /// show deleted files
    #[argh(switch, short = 'A')]
    pub all: bool,
}

/// List the S3 versions of a file (bucket versioning must be on)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "versions", help_triggers("-h", "--help", "help"))]
pub struct VersionsCmd {
    #[argh(positional)]
    pub target: String,
    /// the file's path relative to the target's folder (or, starting with / ./ or ../, a path to it)
    #[argh(positional)]
    pub path: String,
    /// one JSON object per version on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Bring back an S3 version of a file (default: the newest one that is not current)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "restore", help_triggers("-h", "--help", "help"))]
pub struct RestoreCmd {
    #[argh(positional)]
    pub target: String,
    /// the file's path relative to the target's folder (or, starting with / ./ or ../, a path to it)
    #[argh(positional)]
    pub path: String,
    /// the version to bring back (see `s4 versions`)
    #[argh(option)]
    pub version_id: Option<String>,
    /// write it to this file instead of the file's place in the folder
    #[argh(option)]
    pub to: Option<String>,
    /// replace an existing local file
    #[argh(switch)]
    pub force: bool,
}

/// Time one operation with s4's own S3 client: list, put, get or sync
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "bench", help_triggers("-h", "--help", "help"))]
pub struct BenchCmd {
    /// what to time: list s3://B/P | put FILE s3://B/K | get s3://B/K FILE | sync DIR s3://B/P
    #[argh(positional)]
    pub args: Vec<String>,
    /// take endpoint, region and credentials from this target (default: flags and the AWS chain)
    #[argh(option)]
    pub target: Option<String>,
    /// endpoint url of an S3-compatible store (default: AWS_ENDPOINT_URL or AWS)
    #[argh(option)]
    pub endpoint_url: Option<String>,
    /// region name
    #[argh(option)]
    pub region: Option<String>,
    /// requests in flight at once (default 32)
    #[argh(option, default = "32")]
    pub jobs: usize,
    /// multipart part size in MiB (default: s4's choice)
    #[argh(option)]
    pub part_size_mib: Option<u64>,
    /// runs to time; the table shows each and the median (default 1)
    #[argh(option, default = "1")]
    pub repeat: usize,
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,
}

/// How many files a sync would move for each target, without changing anything
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "status", help_triggers("-h", "--help", "help"))]
pub struct StatusCmd {
    /// targets to check (default: all, sorted)
    #[argh(positional)]
    pub targets: Vec<String>,
    /// one JSON object per target on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Show how s4 reaches each target (credentials source, endpoint, region) and what the store supports
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "doctor", help_triggers("-h", "--help", "help"))]
pub struct DoctorCmd {
    /// the target to check (default: all)
    #[argh(positional)]
    pub target: Option<String>,
    /// one JSON object per target on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Print a completion script for bash, zsh or fish
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "completions", help_triggers("-h", "--help", "help"))]
pub struct CompletionsCmd {
    /// bash, zsh or fish
    #[argh(positional)]
    pub shell: String,
}

/// Print the manual page (roff): s4 man > s4.1; man ./s4.1
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "man", help_triggers("-h", "--help", "help"))]
pub struct ManCmd {}

/// Print S4 Version (alias: v)
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "version", help_triggers("-h", "--help", "help"))]
pub struct VersionCmd {}

/// Global switches, accepted before or after the command (`s4 sync docs --no-colors`).
const GLOBAL_SWITCHES: &[&str] = &["--no-colors", "--timestamps", "-q", "--quiet", "-v", "--verbose"];
/// Global options: the flag and its value move together.
const GLOBAL_OPTIONS: &[&str] = &["--log-level"];

/// The command line as argh can parse it: S4's one-letter aliases rewritten to the full names
/// (argh has no aliases), `--version`/`-V` turned into the `version` command, and global flags
/// found after the command moved in front of it (argh only takes a struct's flags before its
/// subcommand). Nothing after `--` is touched.
pub fn normalize(args: &[String]) -> Vec<String> {
    let mut globals = Vec::new();
    let mut rest = Vec::with_capacity(args.len());
    let mut seen_command = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.by_ref().cloned());
            break;
        }
        if GLOBAL_SWITCHES.contains(&a.as_str()) {
            globals.push(a.clone());
            continue;
        }
        if GLOBAL_OPTIONS.contains(&a.as_str()) {
            globals.push(a.clone());
            globals.extend(it.next().cloned());
            continue;
        }
        if !seen_command && (a == "--version" || a == "-V") {
            seen_command = true;
            rest.push("version".into());
            continue;
        }
        if seen_command || a.starts_with('-') {
            rest.push(a.clone());
            continue;
        }
        seen_command = true;
        let full = match a.as_str() {
            "s" => "sync",
            "d" => "daemon",
            "a" => "add",
            "e" => "edit",
            "t" => "targets",
            "v" => "version",
            other => other,
        };
        rest.push(full.to_string());
    }
    globals.extend(rest);
    globals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn aliases_expand_only_in_command_position() {
        assert_eq!(normalize(&v(&["t", "s"])), v(&["targets", "s"]));
        assert_eq!(normalize(&v(&["s", "t"])), v(&["sync", "t"]));
        assert_eq!(normalize(&v(&["--log-level", "DEBUG", "d", "x"])), v(&["--log-level", "DEBUG", "daemon", "x"]));
        assert_eq!(normalize(&v(&["--no-colors", "e", "s"])), v(&["--no-colors", "edit", "s"]));
    }

    #[test]
    fn global_flags_after_the_command_are_accepted() {
        // Issue 12: `s4 sync docs --log-level DEBUG` was refused.
        assert_eq!(
            normalize(&v(&["sync", "docs", "--log-level", "DEBUG", "-q", "--dry-run"])),
            v(&["--log-level", "DEBUG", "-q", "sync", "docs", "--dry-run"])
        );
        // After `--` nothing moves: a file may be called -v.
        assert_eq!(normalize(&v(&["bench", "--", "-v"])), v(&["bench", "--", "-v"]));
        let args = normalize(&v(&["s", "docs", "--timestamps", "--no-colors"]));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = Cli::from_args(&["s4"], &refs).unwrap();
        assert!(cli.timestamps && cli.no_colors);
    }

    #[test]
    fn version_and_help_flags_follow_conventions() {
        // Issue 12: -h, --version and -V were rejected.
        assert_eq!(normalize(&v(&["--version"])), v(&["version"]));
        assert_eq!(normalize(&v(&["-V"])), v(&["version"]));
        for args in [&["-h"][..], &["--help"], &["sync", "-h"], &["rm", "--help"]] {
            let early = Cli::from_args(&["s4"], args).expect_err("help");
            assert!(early.status.is_ok() && early.output.contains("Usage"), "{args:?}: {}", early.output);
        }
    }

    #[test]
    fn parses_s4_command_lines() {
        let args = normalize(&v(&["--timestamps", "s", "docs", "--conflicts", "1", "--dry-run"]));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = Cli::from_args(&["s4"], &refs).unwrap();
        match cli.command {
            Some(Command::Sync(s)) => {
                assert_eq!(s.targets, vec!["docs"]);
                assert_eq!(s.conflicts.as_deref(), Some("1"));
                assert!(s.dry_run && cli.timestamps);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::from_args(&["s4"], &["ls", "docs", "-s", "local", "-A", "-d"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Ls(LsCmd { all: true, descending: true, .. }))));
        let cli = Cli::from_args(&["s4"], &["add", "-C", "other", "--s3-uri", "s3://b/p"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Add(AddCmd { copy_target_credentials: Some(_), .. }))));
    }
}
