//! The gateway → orders → billing chain of `src/services.rs` on real
//! sockets of 127.0.0.1: every request's id, tenant and user reach billing
//! under concurrency, a client cannot name the user, and baggage the gateway
//! does not declare goes no further.

use http::{Method, StatusCode};
use stackholm_examples::client::Client;
use stackholm_examples::services::{self, Chain, Hop, ACCOUNTS};

async fn start() -> (Chain, Client) {
    let chain = services::start()
        .await
        .expect("ephemeral ports of 127.0.0.1 are free");
    let client = Client::new(chain.gateway);
    (chain, client)
}

/// Places an order through the gateway; returns every hop, gateway first.
async fn order(client: &Client, headers: &[(&str, &str)]) -> Vec<Hop> {
    let (status, body) = client
        .send(Method::POST, "/orders/7", headers)
        .await
        .expect("the request goes through");
    assert_eq!(status, StatusCode::OK, "{body}");
    let hop: Hop = serde_json::from_str(&body).expect("the gateway answers with a hop");
    let hops: Vec<Hop> = hop.hops().cloned().collect();
    let services: Vec<&str> = hops.iter().map(|hop| hop.service.as_str()).collect();
    assert_eq!(services, ["gateway", "orders", "billing"]);
    hops
}

/// The members of a hop's `baggage` header, as it received them.
fn members(hop: &Hop) -> Vec<&str> {
    hop.baggage
        .as_deref()
        .map_or_else(Vec::new, |baggage| baggage.split(',').collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_reaches_billing_with_its_own_context() {
    const CONCURRENCY: usize = 64;
    const PER_WORKER: usize = 16;
    const _: () = assert!(CONCURRENCY * PER_WORKER >= 1000);
    let (_chain, client) = start().await;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                let (token, user) = ACCOUNTS[worker % ACCOUNTS.len()];
                let bearer = format!("Bearer {token}");
                // A space to percent-encode in baggage and decode again.
                let tenant = format!("tenant {worker}");
                let mut mismatches = Vec::new();
                for n in 0..PER_WORKER {
                    let id = format!("w{worker}-r{n}");
                    let hops = order(
                        &client,
                        &[
                            ("authorization", &bearer),
                            ("x-request-id", &id),
                            ("x-tenant", &tenant),
                        ],
                    )
                    .await;
                    let expected = (Some(&*id), Some(&*tenant), Some(user));
                    mismatches.extend(
                        hops.into_iter()
                            .filter(|hop| {
                                (
                                    hop.request_id.as_deref(),
                                    hop.tenant.as_deref(),
                                    hop.user.as_deref(),
                                ) != expected
                            })
                            .map(|hop| format!("{id} {tenant:?} {user}: {hop}")),
                    );
                }
                mismatches
            })
        })
        .collect();
    let mut mismatches = Vec::new();
    for worker in workers {
        mismatches.extend(worker.await.expect("no worker panics"));
    }
    assert_eq!(
        mismatches.len(),
        0,
        "hops that saw another request's context: {:#?}",
        &mismatches[..mismatches.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cannot_name_the_user_and_undeclared_baggage_stops_at_the_gateway() {
    let (_chain, client) = start().await;
    let (token, user) = ACCOUNTS[0];
    let hops = order(
        &client,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-request-id", "hostile-1"),
            ("x-tenant", "acme"),
            // The tenant comes from `x-tenant` at the gateway, the user
            // from the token: neither from the client's baggage.
            ("baggage", "user=mallory,role=admin;p=1,tenant=evil"),
        ],
    )
    .await;
    let billing = &hops[2];
    assert_eq!(billing.request_id.as_deref(), Some("hostile-1"));
    assert_eq!(billing.tenant.as_deref(), Some("acme"));
    assert_eq!(billing.user.as_deref(), Some(user));
    for hop in &hops[1..] {
        let members = members(hop);
        assert!(
            !members.iter().any(|member| member.starts_with("role")),
            "{}: {members:?}",
            hop.service
        );
        assert!(
            members.contains(&&*format!("user={user}")),
            "{}: {members:?}",
            hop.service
        );
        assert!(
            members.contains(&"tenant=acme"),
            "{}: {members:?}",
            hop.service
        );
        for hostile in ["user=mallory", "tenant=evil"] {
            assert!(!members.contains(&hostile), "{}: {members:?}", hop.service);
        }
    }
}
