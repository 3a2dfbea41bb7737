//! Issue 22, point 1: the OpenAI-compatible generator backend
//! (`--generator-url`) against llama.cpp's real `llama-server` on loopback,
//! serving the same SmolLM2 GGUF (started by the harness,
//! [`crate::harness::LlamaServer`]). Between the two, where a test needs the
//! network to misbehave, a small real TCP relay ([`Relay`]) answers 503
//! with `Retry-After`, or tells the test when the first generated token has
//! passed so that it can kill the server mid-stream.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, Method};
use serde_json::{json, Value};

use onlabel::copilot::{Copilot, Extractive, Grounded};
use onlabel::llm::remote::{BreakerConfig, ChatRequest, Phase, RemoteConfig};
use onlabel::llm::{Message, RemoteModel};
use onlabel::prompts::PromptFile;
use onlabel::server::{router, AppState, Config, Limits};

use crate::harness::{root, LlamaServer};
use crate::router::{request, send};

/// A TCP relay on loopback in front of `upstream`: answers the next
/// `refuse` chat completions with 503 and `Retry-After: 1`, pipes
/// everything else, and reports (once) when the first piece of generated
/// content passes through it.
struct Relay {
    port: u16,
    refuse: Arc<AtomicUsize>,
    first_content: Arc<Mutex<Option<mpsc::Sender<()>>>>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refuse = Arc::new(AtomicUsize::new(0));
        let first_content: Arc<Mutex<Option<mpsc::Sender<()>>>> = Arc::new(Mutex::new(None));
        let (r, f) = (refuse.clone(), first_content.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (r, f) = (r.clone(), f.clone());
                std::thread::spawn(move || relay_one(client, upstream, &r, &f));
            }
        });
        Relay { port, refuse, first_content }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A receiver told when the first generated content passes.
    fn on_first_content(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        *self.first_content.lock().unwrap() = Some(tx);
        rx
    }
}

fn relay_one(mut client: TcpStream, upstream: u16, refuse: &AtomicUsize, first_content: &Mutex<Option<mpsc::Sender<()>>>) {
    // Read the request head (and nothing more: the body follows in the pipe).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let is_chat = head.starts_with(b"POST /v1/chat/completions");
    // One request per connection: asked to close, the server answers with
    // `Connection: close` and the client does not reuse the connection, so
    // the relay sees (and may refuse) every request.
    if !String::from_utf8_lossy(&head).to_ascii_lowercase().contains("\r\nconnection:") {
        head.truncate(head.len() - 2);
        head.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    if is_chat && refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        // The server is gone: the connection just closes, as a dead node's would.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if up.write_all(&head).is_err() {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 8192];
    loop {
        match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if is_chat && String::from_utf8_lossy(&buf[..n]).contains("\"content\":\"") {
                    if let Some(tx) = first_content.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // Upstream ended or died: end the client's side at once, mid-body or not.
    let _ = client.shutdown(Shutdown::Both);
}

fn remote(url: &str, configure: impl FnOnce(&mut RemoteConfig)) -> Arc<RemoteModel> {
    let mut c = RemoteConfig::new(url);
    // A shared 2-core CI machine decodes at about a token a second under a
    // grammar: the total timeout is not what these tests are about (one test
    // sets its own).
    c.timeout = Duration::from_secs(300);
    configure(&mut c);
    Arc::new(RemoteModel::new(c).unwrap())
}

/// The demo corpus's index, a store with a rep, and a copilot whose answers
/// the server at `server` writes (constrained, few tokens).
struct World {
    _tmp: tempfile::TempDir,
    app: axum::Router,
    token: String,
    data: std::path::PathBuf,
}

fn world(server: Arc<RemoteModel>, max_tokens: usize) -> World {
    use onlabel::users::{Role, Users};
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let index = crate::harness::build_index(&[root().join("corpora/demo")], &idx);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut g = Grounded::remote(server, PromptFile::read(&root().join("prompts/objection.j2")).unwrap());
    g.opts.max_tokens = max_tokens;
    // A loaded CI machine is slow; the budget is not what these tests are about.
    g.opts.time_budget = Duration::from_secs(300);
    let copilot = Copilot::new(index)
        .with_guard(Arc::new(onlabel::guard::Guard::builtin().unwrap()), chrono::Utc::now().date_naive())
        .unwrap()
        .with_cases(onlabel::cases::CaseStore::open(&data).unwrap())
        .with_model(g);
    let products = json!({"products": copilot.products().into_iter().map(|p| json!({"name": p})).collect::<Vec<_>>()});
    let store = onlabel::store::Store::open(&data).unwrap();
    let users = Users::new(&store);
    let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
    let (_, token) = users.add("rex", "Rex Rep", Role::Rep, Some(&admin)).unwrap();
    drop(store);
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.clone(),
        root: root(),
        index: idx,
        thresholds: root().join("evals/thresholds.toml"),
        products,
        // The whole suite runs beside llama-server on a shared machine: the
        // request timeout is not what these tests are about.
        limits: Limits { request_timeout: Duration::from_secs(600), ..Limits::default() },
        eval: Box::new(|_| Err("no evals in this test".to_string())),
        reload_prompt: None,
    };
    let app = router(Arc::new(AppState::new(copilot, config).unwrap()));
    World { _tmp: tmp, app, token: token.0, data }
}

const QUESTION: &str = "How often should liver tests be done?";

fn ask(w: &World, rt: &tokio::runtime::Runtime) -> Value {
    let body = json!({"question": QUESTION, "product": "zentravia"});
    let r = rt.block_on(send(&w.app, request(Method::POST, "/api/v1/ask", Some(&w.token), Some(&body))));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn metrics(w: &World, rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(send(&w.app, request(Method::GET, "/metrics", None, None))).text
}

/// Splits an SSE body into (event, JSON data) pairs.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            (!data.is_empty()).then(|| (event, serde_json::from_str(&data).unwrap_or(Value::String(data))))
        })
        .collect()
}

/// Every word of `text` is one the vocabulary allows, a number or a
/// marker; the last may be the start of one (the token budget cut it).
fn obeys(text: &str, vocab: &onlabel::llm::gbnf::Vocabulary) -> Result<(), String> {
    let markers: Vec<String> = vocab.markers.iter().map(|n| format!("[{n}]")).collect();
    let words: Vec<&str> = text.split(|c: char| c.is_whitespace() || ".,;:()%/-".contains(c)).filter(|w| !w.is_empty()).collect();
    for (i, w) in words.iter().enumerate() {
        let whole = vocab.words.contains(*w) || w.chars().all(|c| c.is_ascii_digit()) || markers.iter().any(|m| m == w);
        let cut = i + 1 == words.len() && (vocab.words.iter().any(|v| v.starts_with(w)) || markers.iter().any(|m| m.starts_with(w)));
        if !whole && !cut {
            return Err(format!("{w:?} (in {text:?}) is not an allowed word, number or marker"));
        }
    }
    Ok(())
}

/// An answer through `--generator-url` is written by llama-server, streamed,
/// verified sentence by sentence, cited, and audited with the model's name
/// and the hash of what the server reports about it; the copy constraint
/// goes to the server as a GBNF grammar, and the server obeys it.
#[test]
fn issue22_remote_answers_are_streamed_constrained_verified_cited_and_audited() {
    let llama = LlamaServer::start();
    let server = remote(&llama.url(), |_| {});
    // The identity: the model's name and a stable hash of its description.
    let id = server.probe().unwrap();
    assert!(id.name.contains("SmolLM2") || id.name.contains("smollm2"), "the model llama-server names: {id:?}");
    assert!(id.llama_cpp && id.sha256.len() == 64, "{id:?}");
    assert_eq!(server.probe().unwrap().sha256, id.sha256, "the hash leaves out what changes per request");
    assert!(server.sends_grammar(), "llama.cpp answers /props: the grammar goes in `grammar`");

    // Streaming, under a grammar of a few words: every piece arrives on its
    // own, and the text is made of those words only.
    let vocab = onlabel::llm::gbnf::Vocabulary { words: ["liver", "tests", "every", "weeks", "Monitor"].map(String::from).into_iter().collect(), markers: [1].into_iter().collect() };
    let mut pieces = Vec::new();
    let req = ChatRequest { max_tokens: 12, grammar: Some(vocab.gbnf()), ..Default::default() };
    let messages = [Message { role: "user".into(), content: "What is the capital of France?".into() }];
    let g = server.chat_stream(&messages, &req, &mut |p| {
        pieces.push(p.to_string());
        true
    })
    .unwrap();
    assert!(pieces.len() >= 2, "streamed piece by piece: {pieces:?}");
    assert_eq!(pieces.concat(), g.text);
    obeys(&g.text, &vocab).unwrap();
    assert!(g.generated_tokens > 0 && g.generated_tokens <= 12, "{g:?}");

    // A whole answer through the copilot and the HTTP API.
    let w = world(server.clone(), 12);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = json!({"question": QUESTION, "product": "zentravia"});
    let mut req = request(Method::POST, "/api/v1/ask", Some(&w.token), Some(&body));
    req.headers_mut().insert(header::ACCEPT, "text/event-stream".parse().unwrap());
    let r = rt.block_on(send(&w.app, req));
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    let a = events.iter().find_map(|(e, v)| (e == "answer").then(|| v.clone())).unwrap_or_else(|| panic!("no answer event: {events:?}"));
    assert_eq!(a["route"], "answer", "{a}");
    assert!(a.get("fallback").is_none(), "the server answered: no fallback: {a}");
    assert!(a["generated_tokens"].as_u64().is_some_and(|n| n > 0), "the server wrote: {a}");
    assert!(!a["citations"].as_array().unwrap().is_empty() && a["answer"].as_str().unwrap().contains("[1]"), "cited: {a}");
    // Whatever stands (generated sentences that passed, or the composed
    // answer when none did), each sentence streamed is one of the answer's.
    let streamed: Vec<&str> = events.iter().filter(|(e, _)| e == "sentence").filter_map(|(_, v)| v["text"].as_str()).collect();
    assert!(!streamed.is_empty(), "{events:?}");
    assert_eq!(streamed.join(" "), a["answer"].as_str().unwrap(), "the stream is the answer");
    let model = a["model"].as_str().unwrap();
    assert_eq!(model, format!("{}@{} sha256:{}", id.name, llama.url(), id.sha256));

    // The audit record names the model and the hash.
    let audit = onlabel::audit::Audit::open(&w.data).unwrap();
    let seq = a["audit_id"].as_i64().unwrap();
    let rec = audit.get(seq).unwrap().unwrap_or_else(|| panic!("no audit record {seq}"));
    assert_eq!(rec.model.as_deref(), Some(format!("{}@{}", id.name, llama.url()).as_str()));
    assert_eq!(rec.model_sha256.as_deref(), Some(id.sha256.as_str()));

    // The verifier ran on the server's own text, written under the passages' grammar.
    let index = onlabel::index::Index::open(&w._tmp.path().join("idx")).unwrap();
    let search = index.search(QUESTION, &onlabel::index::Filter::for_role("rep", Some("zentravia"), chrono::Utc::now().date_naive()), 20).unwrap();
    let mut grounded = Grounded::remote(server.clone(), PromptFile::read(&root().join("prompts/objection.j2")).unwrap());
    grounded.opts.max_tokens = 12;
    grounded.opts.time_budget = Duration::from_secs(300);
    let o = grounded.answer(QUESTION, &search, &search.hits, &Extractive::default(), &mut |_| true).unwrap();
    let generation = o.generation.clone().expect("the server wrote");
    assert!(!generation.text.trim().is_empty() && !o.checked.is_empty(), "{o:?}");
    obeys(&generation.text, &grounded.vocabulary(&o.shown)).unwrap();
    if let Some(d) = &o.draft {
        // Anything kept passed the verifier.
        assert!(d.sentences.iter().all(|s| o.checked.iter().any(|c| c.rejection.is_none() && c.text.trim() == s.text)), "{o:?}");
    }
}

/// 429/503 are retried after the server's `Retry-After`, at most
/// `retries` times; a `Retry-After` over the cap ends the retries; a server
/// that accepts and never answers hits the total timeout, and one that
/// never accepts hits the connect timeout.
#[test]
fn issue22_retries_honour_retry_after_and_timeouts_are_enforced() {
    let llama = LlamaServer::start();
    let relay = Relay::start(llama.port);
    let messages = [Message { role: "user".into(), content: "Say hello.".into() }];
    let req = ChatRequest { max_tokens: 4, ..Default::default() };

    // Two 503s with Retry-After: 1, then the server: about two seconds, then an answer.
    let server = remote(&relay.url(), |c| c.retries = 2);
    server.probe().unwrap();
    relay.refuse.store(2, Ordering::SeqCst);
    let t0 = Instant::now();
    let g = server.chat_stream(&messages, &req, &mut |_| true).unwrap();
    let took = t0.elapsed();
    assert!(!g.text.is_empty(), "{g:?}");
    assert!(took >= Duration::from_secs(2), "Retry-After: 1 was honoured twice: {took:?}");
    assert_eq!(server.stats().retries, 2);
    assert_eq!(server.breaker().phase(), Phase::Closed);

    // More refusals than retries: overloaded, after 1 + 2 attempts.
    relay.refuse.store(5, Ordering::SeqCst);
    let e = server.chat_stream(&messages, &req, &mut |_| true).unwrap_err();
    assert!(matches!(e, onlabel::llm::remote::Error::Overloaded { status: 503, attempts: 3, .. }), "{e}");
    assert_eq!(e.code(), "generator_unavailable");
    relay.refuse.store(0, Ordering::SeqCst);

    // A Retry-After longer than the cap is not waited for.
    let impatient = remote(&relay.url(), |c| c.max_retry_after = Duration::from_millis(500));
    impatient.probe().unwrap();
    relay.refuse.store(1, Ordering::SeqCst);
    let t0 = Instant::now();
    let e = impatient.chat_stream(&messages, &req, &mut |_| true).unwrap_err();
    assert!(matches!(e, onlabel::llm::remote::Error::Overloaded { attempts: 1, .. }) && t0.elapsed() < Duration::from_millis(900), "{e} after {:?}", t0.elapsed());
    relay.refuse.store(0, Ordering::SeqCst);

    // Total timeout: a server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in silent.incoming().flatten() {
            h.lock().unwrap().push(c);
        }
    });
    let slow = remote(&silent_url, |c| c.timeout = Duration::from_millis(700));
    let t0 = Instant::now();
    let e = slow.probe().unwrap_err();
    assert!(matches!(e, onlabel::llm::remote::Error::Timeout { which: "total", .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Connect timeout: a listener whose accept queue is full never completes a handshake.
    let full = tokio_listener_with_backlog_one();
    let addr = full.local_addr().unwrap();
    let _fillers: Vec<_> = (0..8).filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()).collect();
    let unreachable = remote(&format!("http://{addr}"), |c| c.connect_timeout = Duration::from_millis(300));
    let t0 = Instant::now();
    let e = unreachable.probe().unwrap_err();
    assert!(matches!(e, onlabel::llm::remote::Error::Timeout { which: "connect", .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    drop(full);
}

/// A listening socket with a backlog of one that never accepts.
fn tokio_listener_with_backlog_one() -> std::net::TcpListener {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = s.listen(1).unwrap();
        l.into_std().unwrap()
    })
}

/// The kill test: llama-server dies while it streams an answer; the answer
/// falls back to quoted approved text and says why, the breaker opens (in
/// `/metrics` too) and the next answer is quoted without waiting for the
/// dead server; once the server is back and the cool-down has passed, the
/// breaker closes and the server writes answers again.
#[test]
fn issue22_killing_the_server_mid_stream_falls_back_and_the_breaker_closes_again() {
    let mut llama = LlamaServer::start();
    let port = llama.port;
    let relay = Relay::start(port);
    let cool_down = Duration::from_secs(2);
    let server = remote(&relay.url(), |c| c.breaker = BreakerConfig { failures: 1, cool_down });
    server.probe().unwrap();
    // Enough tokens that the stream is still running when the server dies.
    let w = Arc::new(world(server.clone(), 16));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    let first = relay.on_first_content();
    let w2 = w.clone();
    let streamed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let body = json!({"question": QUESTION, "product": "zentravia"});
        let mut req = request(Method::POST, "/api/v1/ask", Some(&w2.token), Some(&body));
        req.headers_mut().insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        rt.block_on(send(&w2.app, req))
    });
    first.recv_timeout(Duration::from_secs(120)).expect("the server began to stream");
    llama.kill();
    let r = streamed.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let events = sse_events(&r.text);
    let a = events.iter().find_map(|(e, v)| (e == "answer").then(|| v.clone())).unwrap_or_else(|| panic!("no answer event: {events:?}"));
    assert_eq!(a["route"], "answer", "{a}");
    assert!(matches!(a["mode"].as_str(), Some("composed" | "extractive")), "quoted: {a}");
    assert_eq!(a["fallback"]["reason"], "generator_unavailable", "{a}");
    assert!(!a["fallback"]["message"].as_str().unwrap().contains("127.0.0.1"), "the rep is not told the cluster's address: {a}");
    assert!(!a["citations"].as_array().unwrap().is_empty(), "{a}");
    let streamed_text: Vec<&str> = events.iter().filter(|(e, _)| e == "sentence").filter_map(|(_, v)| v["text"].as_str()).collect();
    assert_eq!(streamed_text.join(" "), a["answer"].as_str().unwrap(), "the stream is the quoted answer");
    assert_eq!(server.breaker().phase(), Phase::Open);
    let m = metrics(&w, &rt);
    assert!(m.contains("onlabel_generator_breaker_state{state=\"open\"} 1"), "{m}");
    assert!(m.contains("onlabel_generator_breaker_opened_total 1"), "{m}");
    assert!(m.contains("onlabel_generator_fallbacks_total{reason=\"generator_unavailable\"} 1"), "{m}");
    // The audit record keeps the reason.
    let audit = onlabel::audit::Audit::open(&w.data).unwrap();
    let rec = audit.get(a["audit_id"].as_i64().unwrap()).unwrap().unwrap();
    let detail: Value = serde_json::from_str(&rec.detail_json).unwrap();
    assert_eq!(detail["fallback"]["reason"], "generator_unavailable", "{detail}");
    assert!(detail["fallback"]["detail"].as_str().unwrap().contains("broke off"), "the record keeps what happened: {detail}");

    // Open: the next answer is quoted at once, the server not tried.
    let t0 = Instant::now();
    let b = ask(&w, &rt);
    assert_eq!(b["fallback"]["reason"], "generator_unavailable", "{b}");
    let rec = audit.get(b["audit_id"].as_i64().unwrap()).unwrap().unwrap();
    let detail: Value = serde_json::from_str(&rec.detail_json).unwrap();
    assert!(detail["fallback"]["detail"].as_str().unwrap().contains("circuit open"), "{detail}");
    assert!(t0.elapsed() < Duration::from_secs(2), "no wait for a dead server: {:?}", t0.elapsed());
    assert!(server.stats().short_circuited >= 1);

    // The server comes back where it was; after the cool-down one call probes it and closes the breaker.
    let _llama = LlamaServer::start_on(port);
    std::thread::sleep(cool_down + Duration::from_millis(200));
    assert_eq!(server.breaker().phase(), Phase::HalfOpen);
    let c = ask(&w, &rt);
    assert!(c.get("fallback").is_none(), "the server answers again: {c}");
    assert!(c["generated_tokens"].as_u64().is_some_and(|n| n > 0), "written by the server: {c}");
    assert_eq!(server.breaker().phase(), Phase::Closed);
    let m = metrics(&w, &rt);
    assert!(m.contains("onlabel_generator_breaker_state{state=\"closed\"} 1"), "{m}");
    assert!(m.contains("onlabel_generator_breaker_opened_total 1"), "{m}");
}

/// `onlabel serve` takes the server from the config file's `[generator]`
/// table (the flags and `ONLABEL_GENERATOR_*` variables are the same
/// settings): answers name the server's model, `/metrics` shows the
/// breaker, and once the server is gone answers are quoted and say why.
#[test]
fn issue22_serve_takes_the_generator_from_the_config_file() {
    let mut llama = LlamaServer::start();
    let (dir, data, repo, index, users) = crate::server::fixture();
    let config = dir.path().join("onlabel.toml");
    std::fs::write(&config, format!("[generator]\nurl = \"{}\"\nbreaker_failures = 1\ncool_down = 60\ntimeout = 300\n", llama.url())).unwrap();
    let server = crate::server::Server::start_in(dir, data, repo, &index, users, &["--max-tokens", "8"], &[("ONLABEL_CONFIG", config.to_str().unwrap())]);
    let rex = server.users.rex.clone();
    let ask = json!({"question": QUESTION, "product": "zentravia"});
    let (status, a, _) = server.post(Some(&rex), "/api/v1/ask", &ask);
    assert_eq!(status, 200, "{a}");
    assert!(a["model"].as_str().unwrap().contains(&format!("@{} sha256:", llama.url())), "written by the configured server: {a}");
    assert!(a["generated_tokens"].as_u64().is_some_and(|n| n > 0) && a.get("fallback").is_none(), "{a}");
    let (_, m) = server.get(None, "/metrics");
    let m = m["text"].as_str().unwrap_or_default().to_string();
    assert!(m.contains("onlabel_generator_breaker_state{state=\"closed\"} 1"), "{m}");

    llama.kill();
    let (status, b, _) = server.post(Some(&rex), "/api/v1/ask", &ask);
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["fallback"]["reason"], "generator_unavailable", "quoted, and says why: {b}");
    assert!(!b["citations"].as_array().unwrap().is_empty(), "{b}");
    let (_, m) = server.get(None, "/metrics");
    let m = m["text"].as_str().unwrap_or_default().to_string();
    assert!(m.contains("onlabel_generator_breaker_state{state=\"open\"} 1"), "{m}");
}
