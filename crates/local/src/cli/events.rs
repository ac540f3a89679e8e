//! `marketplace events ...`

use clap::Subcommand;

#[derive(Subcommand)]
pub enum EventsCommand {}

pub fn run(cmd: EventsCommand) -> anyhow::Result<i32> {
    match cmd {}
}
