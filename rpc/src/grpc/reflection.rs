//! Server reflection (`grpc.reflection.v1` and `v1alpha`, one schema): the services, and the
//! descriptors of the `.proto` files they come from, as `build.rs` compiled them.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

use super::call::Call;
use super::pb::reflection::server_reflection_request::MessageRequest;
use super::pb::reflection::server_reflection_response::MessageResponse;
use super::pb::reflection::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use super::pb::DESCRIPTOR_SET;
use super::status::{Code, Status};

/// What reflection answers from, built once per process.
struct Index {
    /// File name → encoded `FileDescriptorProto`, and the files it imports.
    files: HashMap<String, (Bytes, Vec<String>)>,
    /// Fully qualified symbol (no leading dot) → the file defining it.
    symbols: HashMap<String, String>,
    /// Message types (for `all_extension_numbers_of_type`).
    messages: HashSet<String>,
    services: Vec<String>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let set = FileDescriptorSet::decode(DESCRIPTOR_SET).expect("build.rs wrote a valid descriptor set");
        let mut idx = Index {
            files: HashMap::new(),
            symbols: HashMap::new(),
            messages: HashSet::new(),
            services: Vec::new(),
        };
        for file in set.file {
            let name = file.name().to_string();
            let pkg = file.package().to_string();
            let qualify = |n: &str| {
                if pkg.is_empty() {
                    n.to_string()
                } else {
                    format!("{pkg}.{n}")
                }
            };
            for svc in &file.service {
                let s = qualify(svc.name());
                for m in &svc.method {
                    idx.symbols.insert(format!("{s}.{}", m.name()), name.clone());
                }
                idx.symbols.insert(s.clone(), name.clone());
                if !pkg.starts_with("google.") {
                    idx.services.push(s);
                }
            }
            for e in &file.enum_type {
                idx.symbols.insert(qualify(e.name()), name.clone());
            }
            for m in &file.message_type {
                add_message(&mut idx, &qualify(m.name()), m, &name);
            }
            idx.files
                .insert(name, (Bytes::from(file.encode_to_vec()), file.dependency.clone()));
        }
        idx.services.sort();
        idx
    })
}

fn add_message(idx: &mut Index, full: &str, m: &DescriptorProto, file: &str) {
    idx.symbols.insert(full.to_string(), file.to_string());
    idx.messages.insert(full.to_string());
    for f in &m.field {
        idx.symbols
            .insert(format!("{full}.{}", f.name()), file.to_string());
    }
    for e in &m.enum_type {
        idx.symbols
            .insert(format!("{full}.{}", e.name()), file.to_string());
    }
    for o in &m.oneof_decl {
        idx.symbols
            .insert(format!("{full}.{}", o.name()), file.to_string());
    }
    for nested in &m.nested_type {
        add_message(idx, &format!("{full}.{}", nested.name()), nested, file);
    }
}

/// `file` and every file it imports, transitively, `file` first.
fn with_imports(idx: &Index, file: &str) -> Option<Vec<Bytes>> {
    idx.files.get(file)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut todo = vec![file.to_string()];
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        if let Some((bytes, deps)) = idx.files.get(&f) {
            out.push(bytes.clone());
            todo.extend(deps.iter().rev().cloned());
        }
    }
    Some(out)
}

fn answer(req: &ServerReflectionRequest) -> MessageResponse {
    let idx = index();
    let not_found = |what: String| {
        MessageResponse::ErrorResponse(ErrorResponse {
            error_code: Code::NotFound as i32,
            error_message: what,
        })
    };
    let files = |list: Option<Vec<Bytes>>, what: String| match list {
        Some(file_descriptor_proto) => MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto,
        }),
        None => not_found(what),
    };
    match &req.message_request {
        Some(MessageRequest::ListServices(_)) => MessageResponse::ListServicesResponse(ListServiceResponse {
            service: idx
                .services
                .iter()
                .map(|name| ServiceResponse { name: name.clone() })
                .collect(),
        }),
        Some(MessageRequest::FileByFilename(name)) => {
            files(with_imports(idx, name), format!("file {name:?} not found"))
        }
        Some(MessageRequest::FileContainingSymbol(sym)) => {
            let sym = sym.trim_start_matches('.');
            let found = idx.symbols.get(sym).and_then(|f| with_imports(idx, f));
            files(found, format!("symbol {sym:?} not found"))
        }
        Some(MessageRequest::FileContainingExtension(e)) => not_found(format!(
            "extension {} of {:?} not found",
            e.extension_number, e.containing_type
        )),
        Some(MessageRequest::AllExtensionNumbersOfType(t)) => {
            if idx.messages.contains(t.trim_start_matches('.')) {
                MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                    base_type_name: t.clone(),
                    extension_number: Vec::new(),
                })
            } else {
                not_found(format!("type {t:?} not found"))
            }
        }
        None => MessageResponse::ErrorResponse(ErrorResponse {
            error_code: Code::InvalidArgument as i32,
            error_message: "empty reflection request".to_string(),
        }),
    }
}

/// One answer per request until the client ends its side.
pub async fn serve(call: &mut Call) -> Result<(), Status> {
    while let Some(req) = call.next::<ServerReflectionRequest>().await? {
        let message_response = Some(answer(&req));
        let resp = ServerReflectionResponse {
            valid_host: req.host.clone(),
            original_request: Some(req),
            message_response,
        };
        call.send(&resp).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_symbols_are_indexed() {
        let idx = index();
        for s in ["squall.v1.Broker", "squall.v1.Admin", "grpc.health.v1.Health"] {
            assert!(idx.services.iter().any(|x| x == s), "{s} listed");
        }
        assert_eq!(idx.symbols["squall.v1.Broker.Publish"], "squall/v1/squall.proto");
        assert_eq!(
            idx.symbols["squall.v1.SubscribeRequest"],
            "squall/v1/squall.proto"
        );
        let files = with_imports(idx, "squall/v1/squall.proto").unwrap();
        assert_eq!(files.len(), 2, "the file and google/protobuf/duration.proto");
    }
}
