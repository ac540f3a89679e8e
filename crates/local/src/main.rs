//! `marketplace`: the Ecosystem Marketplace on one machine.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "marketplace",
    version,
    about = "The Ecosystem Marketplace backend on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// EventBridge event patterns: test a pattern, match a rule set over a file of events.
    #[command(subcommand)]
    Events(cli::events::EventsCommand),
    /// Step Functions state machines: run and validate ASL definitions.
    #[command(subcommand)]
    States(cli::states::StatesCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Events(cmd) => cli::events::run(cmd),
        Command::States(cmd) => cli::states::run(cmd),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
