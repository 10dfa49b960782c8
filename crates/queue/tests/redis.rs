#![cfg(test)]
//! `RedisQueue` against a real Redis (7+), run when `TEST_REDIS_URL` is set:
//!
//! ```sh
//! TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test -p queue
//! ```
//!
//! With a `rediss://` URL (a TLS-only Redis) the same tests run over TLS, trusting the CA in
//! `TEST_REDIS_CA_FILE`; with a `redis-cluster://` URL they run against a Redis Cluster (ACL
//! users are then made on every primary). `.ci/run` runs them all three ways.
//!
//! Without it each test says so and passes; with it set but Redis unreachable they fail. Every
//! test works on a stream and group of its own and deletes them at the end. Two tests create a
//! throw-away ACL user so they can kill exactly the queue's connections (`CLIENT KILL USER`);
//! one starts a private `redis-server` (from the PATH) to kill and restart it.

use std::time::Duration;

use domain::MessageId;
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, StreamsInterface, Value};
use fred::types::{ClusterHash, CustomCommand};
use queue::{Delivery, Job, JobQueue, QueueError, RedisQueue, RedisQueueConfig};
use tokio::time::Instant;

const URL_VAR: &str = "TEST_REDIS_URL";
const CA_VAR: &str = "TEST_REDIS_CA_FILE";

/// `TEST_REDIS_CA_FILE`, if set.
fn ca_file() -> Option<std::path::PathBuf> {
    std::env::var_os(CA_VAR)
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// A fred configuration for `url`; over TLS for `rediss://`, trusting `TEST_REDIS_CA_FILE`.
fn admin_config(url: &str) -> Config {
    let Some(rest) = url.strip_prefix("rediss://") else {
        return Config::from_url(url).unwrap();
    };
    let mut config = Config::from_url(&format!("redis://{rest}")).unwrap();
    let ca = ca_file().unwrap_or_else(|| panic!("{URL_VAR} is rediss:// but {CA_VAR} is unset"));
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.tls = Some(fred::types::config::TlsConnector::from(tls).into());
    config
}

fn job(n: i64) -> Job {
    Job::new(MessageId(n))
}

/// The test's Redis URL, or `None` (after a note) when the variable is unset.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: skipped, set {URL_VAR} (e.g. redis://127.0.0.1:6379) to run it");
            None
        }
    }
}

/// The fixture of every test here: the Redis at `TEST_REDIS_URL`, a stream and group of the
/// test's own, and a raw client to look at and poke Redis. What the test creates there (the
/// stream, ACL users) is removed when this is dropped, also when the test fails.
struct Env {
    url: String,
    admin: Client,
    stream: String,
    group: String,
    /// ACL users made by [`Env::acl_user`], deleted on drop.
    acl_users: std::sync::Mutex<Vec<String>>,
}

impl Env {
    /// The fixture for `test`, or `None` (after a note) without `TEST_REDIS_URL`. Panics when
    /// the variable is set but Redis does not answer.
    async fn start(test: &str) -> Option<Env> {
        let url = redis_url(test)?;
        let admin = Builder::from_config(admin_config(&url)).build().unwrap();
        admin
            .init()
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but Redis is not reachable: {e}"));
        let id = uuid::Uuid::new_v4().simple().to_string();
        Some(Env {
            url,
            admin,
            stream: format!("test:queue:{id}"),
            group: format!("group-{id}"),
            acl_users: std::sync::Mutex::default(),
        })
    }

    /// A queue configuration on this test's stream, with a fresh consumer name.
    fn config(&self) -> RedisQueueConfig {
        RedisQueueConfig {
            stream: self.stream.clone(),
            group: self.group.clone(),
            tls_ca_file: ca_file().filter(|_| self.url.starts_with("rediss://")),
            ..RedisQueueConfig::default()
        }
    }

    async fn queue(&self) -> RedisQueue {
        RedisQueue::connect(&self.url, self.config()).await.unwrap()
    }

    async fn queue_with(&self, config: RedisQueueConfig) -> RedisQueue {
        RedisQueue::connect(&self.url, config).await.unwrap()
    }

    async fn xlen(&self) -> u64 {
        self.admin.xlen(self.stream.as_str()).await.unwrap()
    }

    /// Entries delivered and not yet acknowledged, per XPENDING.
    async fn pending(&self) -> u64 {
        let summary: Vec<Value> = self
            .admin
            .xpending(self.stream.as_str(), self.group.as_str(), ())
            .await
            .unwrap();
        summary[0].as_u64().unwrap()
    }

    async fn raw_xadd(&self, field: &str, value: &str) -> String {
        self.admin
            .xadd(
                self.stream.as_str(),
                false,
                None::<()>,
                "*",
                vec![(field, value)],
            )
            .await
            .unwrap()
    }

    async fn delete_stream(&self) {
        let _: i64 = self.admin.del(self.stream.as_str()).await.unwrap();
    }

    /// Runs a server command (ACL, CLIENT) on every node: the one server, or each primary of
    /// a Redis Cluster (ACL users and client lists are per node there).
    async fn command(&self, name: &'static str, args: Vec<String>) -> Result<Vec<Value>, String> {
        on_every_node(&self.admin, name, args).await
    }

    /// A throw-away ACL user, and the test URL rewritten to log in as that user.
    async fn acl_user(&self) -> (String, String) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (user, password) = (format!("queue-test-{id}"), format!("pw-{id}"));
        self.command(
            "ACL",
            vec![
                "SETUSER".into(),
                user.clone(),
                "on".into(),
                format!(">{password}"),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("the connection tests need ACL SETUSER on the test Redis: {e}"));
        self.acl_users.lock().unwrap().push(user.clone());
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        (
            user.clone(),
            format!("{scheme}://{user}:{password}@{host_and_path}"),
        )
    }

    /// Closes every connection of `user` server-side; returns how many there were.
    async fn kill_user_connections(&self, user: &str) -> i64 {
        let killed = self
            .command("CLIENT", vec!["KILL".into(), "USER".into(), user.into()])
            .await
            .unwrap();
        killed.iter().map(|n| n.as_i64().unwrap()).sum()
    }

    /// Waits (bounded) until a connection of `user` is blocked in XREADGROUP.
    async fn wait_until_blocked(&self, user: &str) {
        for _ in 0..200 {
            let list: String = self
                .command("CLIENT", vec!["LIST".into()])
                .await
                .unwrap()
                .iter()
                .map(|node| node.as_string().unwrap())
                .collect();
            let blocked = list.lines().any(|line| {
                line.contains(&format!(" user={user} "))
                    && line.contains(" cmd=xreadgroup")
                    && line
                        .split(' ')
                        .any(|f| f.starts_with("flags=") && f.contains('b'))
            });
            if blocked {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the queue's read never blocked");
    }
}

impl Drop for Env {
    /// Removes the test's stream and ACL users, best effort, on a thread of its own (drop cannot
    /// await, and may run inside the test's runtime).
    fn drop(&mut self) {
        let url = self.url.clone();
        let stream = self.stream.clone();
        let users = std::mem::take(&mut *self.acl_users.lock().unwrap());
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = Builder::from_config(Config::from_url(&url)?).build()?;
                admin.init().await?;
                let _: i64 = admin.del(stream.as_str()).await?;
                for user in users {
                    on_every_node(&admin, "ACL", vec!["DELUSER".to_owned(), user])
                        .await
                        .map_err(|e| fred::error::Error::new(fred::error::ErrorKind::Unknown, e))?;
                }
                admin.quit().await
            })
        });
        match cleaner.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not clean up after a Redis test: {e}"),
            Err(_) => eprintln!("could not clean up after a Redis test: the thread panicked"),
        }
    }
}

/// `name args` on every node `client` is connected to: one server, or every primary of a Redis
/// Cluster.
async fn on_every_node(
    client: &Client,
    name: &'static str,
    args: Vec<String>,
) -> Result<Vec<Value>, String> {
    let command = || CustomCommand::new_static(name, ClusterHash::Random, false);
    if !client.is_clustered() {
        let one = client.custom(command(), args).await;
        return one.map(|value| vec![value]).map_err(|e| e.to_string());
    }
    let mut replies = Vec::new();
    for node in client.active_connections() {
        let reply = client
            .with_cluster_node(node)
            .custom(command(), args.clone())
            .await
            .map_err(|e| e.to_string())?;
        replies.push(reply);
    }
    Ok(replies)
}

/// Receives until a delivery arrives, retrying after errors like the worker does; bounded.
async fn receive_eventually(queue: &RedisQueue, attempts: usize) -> Delivery {
    for _ in 0..attempts {
        match queue.receive(Duration::from_secs(1)).await {
            Ok(Some(delivery)) => return delivery,
            Ok(None) => {}
            Err(QueueError::Transport(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    panic!("nothing was delivered after {attempts} attempts");
}

#[tokio::test]
async fn publish_receive_ack_leaves_nothing_behind() {
    let Some(env) = Env::start("publish_receive_ack_leaves_nothing_behind").await else {
        return;
    };
    let queue = env.queue().await;
    queue.ping().await.unwrap();

    queue.publish(job(1)).await.unwrap();
    let delivery = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.job, job(1));
    assert!(
        delivery.receipt.contains('-'),
        "the receipt is the entry id"
    );
    assert_eq!(env.pending().await, 1);

    queue.ack(&delivery).await.unwrap();
    assert_eq!(env.xlen().await, 0, "acked entries are deleted");
    assert_eq!(env.pending().await, 0);
    assert_eq!(queue.depth().await.unwrap(), 0);
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);
    // Acknowledging again is harmless.
    queue.ack(&delivery).await.unwrap();
}

#[tokio::test]
async fn receive_many_takes_what_is_ready_in_order_and_ack_many_clears_it() {
    let Some(env) =
        Env::start("receive_many_takes_what_is_ready_in_order_and_ack_many_clears_it").await
    else {
        return;
    };
    let queue = env.queue().await;
    for n in 1..=7 {
        queue.publish(job(n)).await.unwrap();
    }
    let first = queue.receive_many(Duration::from_secs(1), 5).await.unwrap();
    let ids: Vec<i64> = first.iter().map(|d| d.job.message_id.0).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5], "at most `max`, oldest first");
    assert_eq!(env.pending().await, 5);
    let rest = queue.receive_many(Duration::from_secs(1), 5).await.unwrap();
    let ids: Vec<i64> = rest.iter().map(|d| d.job.message_id.0).collect();
    assert_eq!(ids, vec![6, 7], "what is ready, without waiting for more");

    queue.ack_many(&first).await.unwrap();
    assert_eq!(env.pending().await, 2);
    assert_eq!(env.xlen().await, 2, "acknowledged entries are deleted");
    queue.ack_many(&rest).await.unwrap();
    queue.ack_many(&[]).await.unwrap();
    assert_eq!(env.pending().await, 0);
    assert_eq!(env.xlen().await, 0);
    assert!(
        queue
            .receive_many(Duration::ZERO, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_request_id_travels_and_entries_without_one_still_decode() {
    let Some(env) = Env::start("the_request_id_travels_and_entries_without_one_still_decode").await
    else {
        return;
    };
    let queue = env.queue().await;
    let tagged = job(1).with_request_id(domain::RequestId::parse("0123abcd-req"));
    queue.publish(tagged).await.unwrap();
    // An entry as an older server wrote it.
    env.raw_xadd("job", r#"{"message_id":2}"#).await;
    for expected in [tagged, job(2)] {
        let delivery = receive_eventually(&queue, 5).await;
        assert_eq!(delivery.job, expected);
        queue.ack(&delivery).await.unwrap();
    }
}

#[tokio::test]
async fn delivers_in_publish_order() {
    let Some(env) = Env::start("delivers_in_publish_order").await else {
        return;
    };
    let queue = env.queue().await;
    for n in 1..=5 {
        queue.publish(job(n)).await.unwrap();
    }
    for n in 1..=5 {
        let delivery = queue
            .receive(Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.job, job(n));
        queue.ack(&delivery).await.unwrap();
    }
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);
}

#[tokio::test]
async fn depth_counts_jobs_waiting_for_a_first_delivery() {
    let Some(env) = Env::start("depth_counts_jobs_waiting_for_a_first_delivery").await else {
        return;
    };
    let queue = env.queue().await;
    assert_eq!(queue.depth().await.unwrap(), 0, "no stream yet");

    for n in 1..=3 {
        queue.publish(job(n)).await.unwrap();
    }
    assert_eq!(queue.depth().await.unwrap(), 3, "no group yet");

    let first = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queue.depth().await.unwrap(), 2, "handed out is not waiting");
    queue.ack(&first).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 2);

    env.delete_stream().await;
    assert_eq!(queue.depth().await.unwrap(), 0, "a missing stream is empty");
}

#[tokio::test]
async fn jobs_published_before_any_consumer_are_delivered() {
    let Some(env) = Env::start("jobs_published_before_any_consumer_are_delivered").await else {
        return;
    };
    let producer = env.queue().await;
    producer.publish(job(1)).await.unwrap();
    producer.publish(job(2)).await.unwrap();
    let groups: Vec<Value> = env.admin.xinfo_groups(env.stream.as_str()).await.unwrap();
    assert!(groups.is_empty(), "no consumer group exists yet");

    let consumer = env.queue().await;
    for n in 1..=2 {
        let delivery = consumer
            .receive(Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.job, job(n));
        consumer.ack(&delivery).await.unwrap();
    }
}

#[tokio::test]
async fn an_unacknowledged_delivery_is_taken_over_by_another_consumer() {
    let Some(env) =
        Env::start("an_unacknowledged_delivery_is_taken_over_by_another_consumer").await
    else {
        return;
    };
    let a = env.queue().await;
    a.publish(job(42)).await.unwrap();
    let lost = a.receive(Duration::from_secs(1)).await.unwrap().unwrap();
    assert_eq!(lost.job, job(42));
    // A "dies" without acknowledging.
    drop(a);

    // B considers any unacknowledged entry abandoned at once.
    let b = env
        .queue_with(RedisQueueConfig {
            claim_idle: Duration::ZERO,
            ..env.config()
        })
        .await;
    let again = b.receive(Duration::from_secs(1)).await.unwrap().unwrap();
    assert_eq!(again, lost, "same job, same entry");
    assert_eq!(env.pending().await, 1);

    b.ack(&again).await.unwrap();
    assert_eq!(env.pending().await, 0);
    assert_eq!(env.xlen().await, 0);
    assert_eq!(b.receive(Duration::ZERO).await.unwrap(), None);
}

#[tokio::test]
async fn a_deleted_stream_is_recreated_and_later_jobs_flow() {
    let Some(env) = Env::start("a_deleted_stream_is_recreated_and_later_jobs_flow").await else {
        return;
    };
    let queue = env.queue().await;
    queue.publish(job(1)).await.unwrap();
    let first = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    queue.ack(&first).await.unwrap();

    // The stream (and with it the group) vanishes under a running consumer.
    env.delete_stream().await;
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);
    queue.publish(job(2)).await.unwrap();
    let second = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.job, job(2));
    queue.ack(&second).await.unwrap();

    // Deleted again, and a producer recreates the stream (without the group) first.
    env.delete_stream().await;
    let producer = env.queue().await;
    producer.publish(job(3)).await.unwrap();
    let third = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.job, job(3));
    queue.ack(&third).await.unwrap();
}

#[tokio::test]
async fn a_stream_deleted_during_a_blocked_read_is_recovered() {
    let Some(env) = Env::start("a_stream_deleted_during_a_blocked_read_is_recovered").await else {
        return;
    };
    let (user, user_url) = env.acl_user().await;
    let queue = std::sync::Arc::new(RedisQueue::connect(&user_url, env.config()).await.unwrap());
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);

    let reading = tokio::spawn({
        let queue = std::sync::Arc::clone(&queue);
        async move { queue.receive(Duration::from_secs(5)).await }
    });
    env.wait_until_blocked(&user).await;
    env.delete_stream().await;
    env.queue().await.publish(job(7)).await.unwrap();

    let delivery = match reading.await.unwrap() {
        Ok(Some(delivery)) => delivery,
        // Acceptable too, as long as the next receive finds the job.
        Ok(None) | Err(QueueError::Transport(_)) => receive_eventually(&queue, 3).await,
        Err(other) => panic!("unexpected error: {other}"),
    };
    assert_eq!(delivery.job, job(7));
    queue.ack(&delivery).await.unwrap();
}

#[tokio::test]
async fn killed_connections_are_reopened_by_the_queue() {
    let Some(env) = Env::start("killed_connections_are_reopened_by_the_queue").await else {
        return;
    };
    let (user, user_url) = env.acl_user().await;
    let queue = std::sync::Arc::new(RedisQueue::connect(&user_url, env.config()).await.unwrap());
    let password = user_url
        .rsplit_once('@')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1;
    assert!(!format!("{queue:?}").contains(password));
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);

    // Both connections (commands and blocking read) are closed server-side while idle.
    assert!(env.kill_user_connections(&user).await >= 2);
    publish_eventually(&queue, job(1), 50).await;
    let delivery = receive_eventually(&queue, 10).await;
    assert_eq!(delivery.job, job(1));
    queue.ack(&delivery).await.unwrap();
    queue.ping().await.unwrap();

    // And closed while a read is blocked on one of them.
    let reading = tokio::spawn({
        let queue = std::sync::Arc::clone(&queue);
        async move { queue.receive(Duration::from_secs(5)).await }
    });
    env.wait_until_blocked(&user).await;
    assert!(env.kill_user_connections(&user).await >= 1);
    env.raw_xadd("job", r#"{"message_id":2}"#).await;
    let delivery = match reading.await.unwrap() {
        Ok(Some(delivery)) => delivery,
        Ok(None) | Err(QueueError::Transport(_)) => receive_eventually(&queue, 10).await,
        Err(other) => panic!("unexpected error: {other}"),
    };
    assert_eq!(delivery.job, job(2));
    queue.ack(&delivery).await.unwrap();
    assert_eq!(env.xlen().await, 0);
}

#[tokio::test]
async fn entries_without_a_valid_job_are_dropped() {
    let Some(env) = Env::start("entries_without_a_valid_job_are_dropped").await else {
        return;
    };
    let queue = env.queue().await;
    env.raw_xadd("job", "not json").await;
    env.raw_xadd("job", r#"{"message_id":"seven"}"#).await;
    env.raw_xadd("other", "field").await;
    queue.publish(job(5)).await.unwrap();

    let delivery = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.job, job(5));
    assert_eq!(env.xlen().await, 1, "the bad entries were deleted");
    queue.ack(&delivery).await.unwrap();
    assert_eq!(env.xlen().await, 0);
    assert_eq!(env.pending().await, 0);

    // A bad entry that was handed out and abandoned is dropped by the taker-over too.
    env.raw_xadd("job", "garbage").await;
    let reader = env
        .queue_with(RedisQueueConfig {
            claim_idle: Duration::ZERO,
            ..env.config()
        })
        .await;
    // Deliver the garbage to a consumer that never acks it: read it raw as "ghost".
    let _: Value = env
        .admin
        .xreadgroup(
            env.group.as_str(),
            "ghost",
            Some(1),
            None,
            false,
            env.stream.as_str(),
            ">",
        )
        .await
        .unwrap();
    assert_eq!(env.pending().await, 1);
    assert_eq!(reader.receive(Duration::ZERO).await.unwrap(), None);
    assert_eq!(env.pending().await, 0);
    assert_eq!(env.xlen().await, 0);
}

#[tokio::test]
async fn receive_returns_none_after_waiting_on_an_empty_queue() {
    let Some(env) = Env::start("receive_returns_none_after_waiting_on_an_empty_queue").await else {
        return;
    };
    let queue = env.queue().await;

    let started = Instant::now();
    assert_eq!(queue.receive(Duration::ZERO).await.unwrap(), None);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no wait means no wait"
    );

    let started = Instant::now();
    assert_eq!(
        queue.receive(Duration::from_millis(300)).await.unwrap(),
        None
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");

    // A job published during the wait ends it.
    let queue = std::sync::Arc::new(queue);
    let reading = tokio::spawn({
        let queue = std::sync::Arc::clone(&queue);
        async move { queue.receive(Duration::from_secs(10)).await }
    });
    env.queue().await.publish(job(9)).await.unwrap();
    let delivery = reading.await.unwrap().unwrap().unwrap();
    assert_eq!(delivery.job, job(9));
    queue.ack(&delivery).await.unwrap();
}

/// Needs no Redis: nothing listens on port 1.
#[tokio::test]
async fn connecting_to_a_closed_port_fails_quickly_without_leaking_the_password() {
    let started = Instant::now();
    let error = RedisQueue::connect(
        "redis://user:secret@127.0.0.1:1",
        RedisQueueConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(7));
    let QueueError::Transport(text) = &error else {
        panic!("expected a transport error, got {error:?}");
    };
    assert!(!text.contains("secret"), "{text}");
    assert!(!format!("{error:?}").contains("secret"));
    assert!(text.contains("127.0.0.1:1"), "{text}");

    let error = RedisQueue::connect("redis://user:secret@[::1", RedisQueueConfig::default())
        .await
        .unwrap_err();
    // A malformed URL is a configuration error (waiting will not help), also without it.
    assert!(matches!(&error, QueueError::Config(t) if !t.contains("secret")));
}

/// A `redis-server` of the test's own (no persistence), killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    /// `None` (after a note) when no `redis-server` binary is on the PATH.
    fn start(test: &str, port: Option<u16>) -> Option<PrivateRedis> {
        let port = port.unwrap_or_else(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        });
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                eprintln!("{test}: skipped, cannot start redis-server: {error}");
                return None;
            }
        };
        let redis = PrivateRedis { child, port };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not listen on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis dies and comes back empty (no persistence) under a connected queue: while it is down
/// the calls fail with `Transport` in bounded time; afterwards the queue reconnects and recreates
/// its group by itself.
#[tokio::test]
async fn the_queue_survives_a_redis_restart_without_persistence() {
    let test = "the_queue_survives_a_redis_restart_without_persistence";
    if redis_url(test).is_none() {
        return;
    }
    let Some(server) = PrivateRedis::start(test, None) else {
        return;
    };
    let port = server.port;
    let config = RedisQueueConfig {
        command_timeout: Duration::from_secs(1),
        ..RedisQueueConfig::default()
    };
    let queue = RedisQueue::connect(&server.url(), config).await.unwrap();
    queue.publish(job(1)).await.unwrap();
    let delivery = queue
        .receive(Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    queue.ack(&delivery).await.unwrap();

    drop(server);
    let started = Instant::now();
    assert!(matches!(
        queue.publish(job(2)).await,
        Err(QueueError::Transport(_))
    ));
    assert!(matches!(
        queue.receive(Duration::from_millis(200)).await,
        Err(QueueError::Transport(_))
    ));
    assert!(queue.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let _server = PrivateRedis::start(test, Some(port)).unwrap();
    publish_eventually(&queue, job(3), 100).await;
    let delivery = receive_eventually(&queue, 10).await;
    assert_eq!(delivery.job, job(3));
    queue.ack(&delivery).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
}

/// Publishes, retrying every 100 ms up to `tries` times while the queue reconnects.
async fn publish_eventually(queue: &RedisQueue, job: Job, tries: u32) {
    for _ in 0..tries {
        if queue.publish(job).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("publish never worked again");
}

#[tokio::test]
async fn the_shared_rate_limit_is_one_allowance_for_every_connection() {
    use chrono::{TimeDelta, TimeZone, Utc};
    use queue::{LIMIT_PREFIX, Quota, SharedRateLimit};

    let Some(env) = Env::start("the_shared_rate_limit_is_one_allowance_for_every_connection").await
    else {
        return;
    };
    // Two servers' connections.
    let a = std::sync::Arc::new(env.queue().await).rate_limit();
    let b = std::sync::Arc::new(env.queue().await).rate_limit();
    let key = format!("test:{}", env.group);
    let other = format!("{key}:other");
    let quota = Quota::per_minute(4).unwrap();
    let t0 = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let interval = Duration::from_secs(15);

    for (i, limit) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            limit.check(&key, quota, t0).await.unwrap(),
            Ok(()),
            "post {i}"
        );
    }
    // The fifth is refused on either connection: one allowance, not two.
    assert_eq!(limit_of(&a, &key, quota, t0).await, Err(interval));
    assert_eq!(limit_of(&b, &key, quota, t0).await, Err(interval));
    // Another client has its own.
    assert_eq!(a.check(&other, quota, t0).await.unwrap(), Ok(()));
    // The key lives until the client is back to a full burst, no longer.
    let ttl: i64 = env
        .admin
        .pttl(format!("{LIMIT_PREFIX}{key}"))
        .await
        .unwrap();
    assert!(ttl > 55_000 && ttl <= 60_000, "PTTL {ttl}");
    // One interval later exactly one more is allowed.
    let t1 = t0 + TimeDelta::from_std(interval).unwrap();
    assert_eq!(limit_of(&b, &key, quota, t1).await, Ok(()));
    let wait = limit_of(&a, &key, quota, t1).await.unwrap_err();
    assert_eq!(wait, interval);
    // One key per DEL: on a Redis Cluster the two may live on different nodes.
    for k in [&key, &other] {
        let _: i64 = env.admin.del(format!("{LIMIT_PREFIX}{k}")).await.unwrap();
    }

    async fn limit_of(
        limit: &queue::RedisRateLimit,
        key: &str,
        quota: Quota,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), Duration> {
        limit.check(key, quota, now).await.unwrap()
    }
}
