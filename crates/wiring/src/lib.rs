#![doc = include_str!("../README.md")]

mod adapters;
mod engine;
mod process;
mod web_app;

pub use adapters::{
    CONNECT_FIRST_DELAY, CONNECT_MAX_DELAY, Services, WiringError, build_mailer, build_queue,
    connect_store, connect_store_unchecked,
};
pub use engine::{delivery_engine, feedback_loop, start_ops_listener};
pub use process::{Threads, exit_code, report, run_main, shutdown_signal};
pub use web_app::{app_state, run_server, serve};
