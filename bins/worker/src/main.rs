//! `worker`: the standalone delivery process (used with Redis).

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    settings::telemetry::init();
    let settings = settings::Settings::load()?;
    if settings.embedded_queue() {
        bail!(
            "REDIS_URL is not set. Without Redis, `server` delivers email itself and there is nothing \
             for a separate worker to do; set REDIS_URL to run server and worker as separate processes"
        );
    }
    settings.build_queue()?;
    bail!("the standalone worker needs the Redis queue, which this version does not have")
}
