//! `marketplace states ...`

use clap::Subcommand;

#[derive(Subcommand)]
pub enum StatesCommand {}

pub fn run(cmd: StatesCommand) -> anyhow::Result<i32> {
    match cmd {}
}
