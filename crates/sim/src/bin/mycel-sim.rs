//! `mycel-sim`: the simulator on its own (the same arguments as `mycel sim`), for benchmark
//! scripts such as `bench/sim_table.sh`.

use clap::Parser;

/// Discrete-event simulation of mycel's DHT and baseline protocols.
#[derive(Parser)]
#[command(name = "mycel-sim", version)]
struct Cli {
    #[command(flatten)]
    args: mycel_sim::cli::SimArgs,
}

fn main() -> anyhow::Result<()> {
    mycel_sim::cli::run(&Cli::parse().args)
}
