use std::sync::Arc;
#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let store = capstan_store::sqlite::SqliteStore::open(std::path::Path::new(&dir))
        .await
        .unwrap();
    let server = capstan_apiserver::ApiServer::new(
        capstan_apiserver::Config {
            port: 6443,
            service_ip: "10.43.0.1".parse().unwrap(),
        },
        Arc::new(store),
    );
    server.bootstrap().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:18080").await.unwrap();
    axum::serve(listener, server.router()).await.unwrap();
}
