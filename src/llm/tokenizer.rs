//! A tokenizer built from the GGUF file's own metadata (tokens, merges, token
//! types), so that any llama-family GGUF works without a separate
//! `tokenizer.json`.
//!
//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is supported with the
//! pre-tokenizers llama.cpp knows by name: `smollm` (and the StarCoder
//! family) split every digit on its own and then apply the GPT-2 pattern
//! *without* a prefix space — candle's own `TokenizerFromGguf` adds a leading
//! space there, which shifts every token. Control tokens (`<|im_start|>`,
//! `<|im_end|>`…) are added as special tokens so chat templates tokenise
//! exactly as in llama.cpp.

use candle_core::quantized::gguf_file;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::Error;

/// GGUF token type of a control token.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of a user-defined token.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer of a GGUF model plus the ids the generator needs.
pub struct GgufTokenizer {
    /// The tokenizer proper.
    pub inner: Tokenizer,
    /// End-of-sequence id (`tokenizer.ggml.eos_token_id`).
    pub eos: Option<u32>,
    /// Ids of every control token (any of them ends generation when emitted).
    pub control: Vec<u32>,
    /// The vocabulary, by id (for the constrained-decoding mask).
    pub vocab: Vec<String>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer").field("vocab", &self.vocab.len()).field("eos", &self.eos).finish()
    }
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value, Error> {
    ct.metadata.get(key).ok_or_else(|| Error::Unsupported(format!("GGUF metadata lacks {key}")))
}

impl GgufTokenizer {
    /// Builds the tokenizer from GGUF metadata.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<GgufTokenizer, Error> {
        let bad = |what: &str| Error::Unsupported(format!("GGUF tokenizer metadata: {what}"));
        let model = md(ct, "tokenizer.ggml.model")?.to_string().map_err(|_| bad("model"))?.clone();
        if model != "gpt2" {
            return Err(Error::Unsupported(format!(
                "tokenizer model {model:?}: only byte-level BPE (\"gpt2\") GGUF tokenizers are supported"
            )));
        }
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let tokens: Vec<String> = md(ct, "tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|_| bad("tokens"))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("tokens"))?;
        let merges: Vec<(String, String)> = md(ct, "tokenizer.ggml.merges")?
            .to_vec()
            .map_err(|_| bad("merges"))?
            .iter()
            .filter_map(|v| v.to_string().ok())
            .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect();
        let types: Vec<i32> = ct
            .metadata
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|t| t.to_i32().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Unsupported(format!("cannot build BPE from GGUF: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tok: PreTokenizerWrapper = match pre.as_str() {
            // llama.cpp: LLAMA_VOCAB_PRE_TYPE_SMOLLM / STARCODER / REFACT… → "\p{N}" then the GPT-2 pattern.
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            _ => byte_level.into(),
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(ByteLevel::default()));
        let mut control = Vec::new();
        let mut specials = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let ty = types.get(i).copied().unwrap_or(1);
            if ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED {
                specials.push(AddedToken::from(t.clone(), true));
                if ty == TOKEN_TYPE_CONTROL {
                    control.push(i as u32);
                }
            }
        }
        inner.add_special_tokens(specials).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let eos = ct.metadata.get("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok());
        Ok(GgufTokenizer { inner, eos, control, vocab: tokens })
    }

    /// Token ids of a text; special tokens written in the text are matched.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of token ids (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String, Error> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Id of a token given its exact text, if it is in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }
}
