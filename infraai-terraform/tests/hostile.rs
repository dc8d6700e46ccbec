//! A hostile corpus of names and values through the HCL writer and the real
//! terraform: invalid identifiers are rejected; every accepted value validates
//! and comes back byte for byte from `terraform output -json`.

mod common;

use common::{cleanup, runner, Collect};
use infraai_core::{RunId, TerraformFiles, TfRunner};
use infraai_terraform::hcl::{Block, Body, Expr, HclError, Part};
use serde_json::{json, Map, Value};
use unicode_normalization::UnicodeNormalization;

fn corpus() -> Vec<String> {
    let mut values: Vec<String> = [
        "plain",
        "",
        "quote \" inside",
        "\"",
        "back\\slash",
        "trailing backslash \\",
        "\\\"",
        "new\nline",
        "cr\r\nlf",
        "tab\there",
        "${var.x}",
        "${",
        "$${var.x}",
        "$$${x}",
        "$",
        "%{ if true }yes%{ endif }",
        "%%{x}",
        "%",
        "}",
        "{",
        "}}\n{{",
        "\"\n}\nresource \"terraform_data\" \"pwned\" {\n  input = \"x",
        "# comment",
        "// comment",
        "/* comment */",
        "<<EOF\nheredoc\nEOF",
        "=",
        "é ü ñ 日本語 😀 العربية",
        "\u{202E}rtl override\u{200B}",
        "bell\u{7}esc\u{1b}[31m",
        "e\u{301} (combining accent, not NFC)",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    values.push("${var.x}\"\\%{\n".repeat(2000));
    values.push("x".repeat(50_000));
    values
}

const BAD_NAMES: &[&str] = &[
    "",
    "1abc",
    "-abc",
    "a b",
    "a.b",
    "a\"b",
    "a\nb",
    "a{",
    "a}",
    "a=b",
    "${var.x}",
    "é",
    "a/b",
    "a\\b",
    "\" {\n}\nresource \"x\" \"y",
];

#[test]
fn invalid_identifiers_are_rejected_with_a_clear_error() {
    for bad in BAD_NAMES {
        let attempts: Vec<(&str, Result<(), HclError>)> = vec![
            ("variable", Block::variable(bad).map(drop)),
            ("output", Block::output(bad).map(drop)),
            ("resource type", Block::resource(bad, "ok").map(drop)),
            (
                "resource name",
                Block::resource("terraform_data", bad).map(drop),
            ),
            ("block type", Block::new(bad, ["x"]).map(drop)),
            (
                "attribute",
                Block::variable("ok")
                    .and_then(|b| b.attr(bad, "v"))
                    .map(drop),
            ),
        ];
        let mut attempts = attempts;
        // `a.b` is a valid path of two segments; every other name is not.
        if !bad.contains('.') {
            attempts.push((
                "reference",
                Expr::reference(&format!("var.{bad}")).map(drop),
            ));
        }
        for (what, result) in attempts {
            let err = result.expect_err(&format!("{what} {bad:?} must be rejected"));
            let text = err.to_string();
            assert!(
                text.contains("must match [A-Za-z_][A-Za-z0-9_-]*") && text.starts_with("invalid "),
                "{what}: {text}"
            );
            let core: infraai_core::Error = err.into();
            assert!(matches!(core, infraai_core::Error::Invalid { .. }));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_round_trip_through_terraform_byte_for_byte() {
    let Some(runner) = runner("hostile") else {
        return;
    };
    let values = corpus();
    let mut body = Body::new();
    let mut refs = Vec::new();
    let mut literal = Map::new();
    for (i, v) in values.iter().enumerate() {
        // Into a variable (default and description) …
        body.push(
            Block::variable(&format!("v{i}"))
                .unwrap()
                .attr("type", Expr::reference("string").unwrap())
                .unwrap()
                .attr("description", v.as_str())
                .unwrap()
                .attr("default", v.as_str())
                .unwrap(),
        );
        refs.push((
            format!("k{i}"),
            Expr::reference(&format!("var.v{i}")).unwrap(),
        ));
        // … as a literal attribute value, under a hostile key …
        literal.insert(format!("{i}:{v}"), Value::String(v.clone()));
        // … and straight into outputs.
        body.push(
            Block::output(&format!("var_{i}"))
                .unwrap()
                .attr("value", Expr::reference(&format!("var.v{i}")).unwrap())
                .unwrap()
                .attr("description", v.as_str())
                .unwrap(),
        );
        body.push(
            Block::output(&format!("res_{i}"))
                .unwrap()
                .attr(
                    "value",
                    Expr::reference(&format!("terraform_data.refs.output.k{i}")).unwrap(),
                )
                .unwrap(),
        );
    }
    body.push(
        Block::resource("terraform_data", "refs")
            .unwrap()
            .attr("input", Expr::Object(refs))
            .unwrap(),
    );
    body.push(
        Block::resource("terraform_data", "literal")
            .unwrap()
            .attr("input", Value::Object(literal.clone()))
            .unwrap(),
    );
    body.push(
        Block::output("literal")
            .unwrap()
            .attr(
                "value",
                Expr::reference("terraform_data.literal.output").unwrap(),
            )
            .unwrap(),
    );
    // Templates and function calls keep literal parts literal too.
    let (a, b) = (values[2].as_str(), values[21].as_str());
    body.push(
        Block::output("templated")
            .unwrap()
            .attr(
                "value",
                Expr::template([
                    Part::lit(a),
                    Part::Interp(Expr::reference("var.v10").unwrap()),
                    Part::lit(b),
                ]),
            )
            .unwrap(),
    );
    body.push(
        Block::output("called")
            .unwrap()
            .attr(
                "value",
                Expr::call("join", [Expr::from("|"), Expr::from(vec![a, b])]).unwrap(),
            )
            .unwrap(),
    );
    let templated = format!("{a}{}{b}", values[10]);
    let called = format!("{a}|{b}");
    let hcl = body.to_string();
    // Structure is unchanged by any value: exactly the blocks we built.
    let block_lines = hcl
        .lines()
        .filter(|l| {
            l.starts_with("resource ") || l.starts_with("variable ") || l.starts_with("output ")
        })
        .count();
    assert_eq!(block_lines, values.len() * 3 + 5);

    let log = Collect::default();
    let ws = runner
        .write_files(RunId::new(), &TerraformFiles::single(hcl))
        .await
        .unwrap();
    let t = std::time::Instant::now();
    runner.init(&ws, &log).await.unwrap();
    eprintln!("init {:?}", t.elapsed());
    let report = runner.validate(&ws).await.unwrap();
    assert!(report.valid, "{report:?}");
    eprintln!("validate {:?}", t.elapsed());
    let plan = runner.plan(&ws, &log).await.unwrap();
    eprintln!("plan {:?}", t.elapsed());
    let addresses: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    assert_eq!(addresses, ["terraform_data.literal", "terraform_data.refs"]);
    runner.apply(&ws, &log).await.unwrap();
    eprintln!("apply {:?}", t.elapsed());
    let outputs = runner.output(&ws).await.unwrap();
    eprintln!("output {:?}", t.elapsed());
    assert_eq!(outputs.len(), values.len() * 2 + 3);
    assert_eq!(outputs["templated"], json!(templated));
    assert_eq!(outputs["called"], json!(called));

    // Terraform normalizes strings to Unicode NFC: an NFC value comes back
    // byte for byte; any other value comes back as its NFC form.
    let nfc = |s: &str| s.nfc().collect::<String>();
    for (i, v) in values.iter().enumerate() {
        let expected = Value::String(nfc(v));
        if nfc(v) == *v {
            assert_eq!(
                outputs[&format!("var_{i}")].as_str().map(str::as_bytes),
                Some(v.as_bytes())
            );
        }
        assert_eq!(outputs[&format!("var_{i}")], expected, "var_{i}");
        assert_eq!(outputs[&format!("res_{i}")], expected, "res_{i}");
    }
    let expected_literal: Map<String, Value> = literal
        .into_iter()
        .map(|(k, v)| (nfc(&k), json!(nfc(v.as_str().unwrap_or_default()))))
        .collect();
    assert_eq!(outputs["literal"], Value::Object(expected_literal));
    assert!(!runner.config().work_root.join("pwned").exists());
    cleanup(&runner).await;
}

mod property {
    use super::*;
    use infraai_terraform::TerraformRunner;
    use proptest::prelude::*;

    /// Arbitrary strings, biased towards HCL's special characters.
    fn hostile_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\"\\\\$%{}\n\r\t#/*<=a-z]{0,24}",
            proptest::collection::vec(
                prop_oneof![
                    Just("${".to_string()),
                    Just("%{".to_string()),
                    Just("$${".to_string()),
                    Just("\\".to_string()),
                    Just("\"".to_string()),
                    Just("}".to_string()),
                    any::<char>().prop_map(String::from),
                ],
                0..12
            )
            .prop_map(|v| v.concat()),
        ]
    }

    async fn round_trip(runner: &TerraformRunner, values: &[String]) -> Vec<Value> {
        let mut body = Body::new();
        for (i, v) in values.iter().enumerate() {
            body.push(
                Block::output(&format!("o{i}"))
                    .unwrap()
                    .attr("value", v.as_str())
                    .unwrap(),
            );
        }
        let log = Collect::default();
        let ws = runner
            .write_files(RunId::new(), &TerraformFiles::single(body.to_string()))
            .await
            .unwrap();
        runner.init(&ws, &log).await.unwrap();
        let report = runner.validate(&ws).await.unwrap();
        assert!(report.valid, "{report:?}\n{}", body);
        runner.plan(&ws, &log).await.unwrap();
        runner.apply(&ws, &log).await.unwrap();
        let outputs = runner.output(&ws).await.unwrap();
        (0..values.len())
            .map(|i| outputs[&format!("o{i}")].clone())
            .collect()
    }

    /// The real terraform is the oracle: any string written by the writer
    /// reads back as itself (in NFC, as Terraform normalizes).
    #[test]
    fn any_string_reads_back_from_terraform() {
        let Some(runner) = common::runner("property") else {
            return;
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = ProptestConfig {
            cases: 4,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(values in proptest::collection::vec(hostile_string(), 48))| {
            let got = rt.block_on(round_trip(&runner, &values));
            for (v, g) in values.iter().zip(got) {
                let expected: String = v.nfc().collect();
                prop_assert_eq!(g, Value::String(expected), "input {:?}", v);
            }
        });
        rt.block_on(cleanup(&runner));
    }
}
