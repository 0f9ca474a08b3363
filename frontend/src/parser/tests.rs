use super::*;

fn nodes(text: &str) -> Vec<Node> {
    parse(text).unwrap().nodes
}

fn one(text: &str) -> Node {
    let mut n = nodes(text);
    assert_eq!(n.len(), 1, "{n:?}");
    n.remove(0)
}

fn err(text: &str) -> ParseError {
    parse(text).unwrap_err()
}

#[test]
fn keywords_are_case_insensitive() {
    let n = one("rUn echo hi");
    assert_eq!(n.keyword, "run");
    assert_eq!(n.values, ["echo hi"]);
    assert_eq!(n.original, "rUn echo hi");
}

#[test]
fn bom_and_crlf() {
    let n = nodes("\u{feff}FROM a\r\nRUN b \\\r\n  c\r\n");
    assert_eq!(n[0].values, ["a"]);
    assert_eq!(n[1].values, ["b   c"]);
    assert_eq!((n[1].start_line, n[1].end_line), (2, 3));
}

#[test]
fn line_numbers_skip_comments_and_blank_lines() {
    let n = nodes("# c\n\nFROM a\n\n# x\nRUN a \\\n# inside\n  b\nCMD c\n");
    let lines: Vec<_> = n.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(lines, [(3, 3), (6, 8), (9, 9)]);
    assert_eq!(n[1].values, ["a   b"]);
}

#[test]
fn escape_directive_changes_continuation() {
    let p = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  d\n").unwrap();
    assert_eq!(p.directives.escape, '`');
    assert_eq!(p.nodes[1].values, ["dir c:\\   d"]);
}

#[test]
fn directives_after_an_instruction_are_comments() {
    let p = parse("FROM a\n# escape=`\n").unwrap();
    assert_eq!(p.directives, Directives::default());
}

#[test]
fn repeated_directive_fails_with_location() {
    let e = err("# syntax=a\n# syntax=b\nFROM x\n");
    assert_eq!(e.kind, ParseErrorKind::RepeatedDirective("syntax".into()));
    assert_eq!((e.line, e.column), (2, 1));
    assert_eq!(e.text, "# syntax=b");
}

#[test]
fn empty_continuation_line_warns() {
    let p = parse("FROM a\nRUN a \\\n\n  b\n").unwrap();
    assert_eq!(p.nodes[1].values, ["a   b"]);
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].line, 4);
}

#[test]
fn continuation_at_eof() {
    assert_eq!(nodes("FROM a\nRUN x \\")[1].values, ["x"]);
}

#[test]
fn lone_continuation_at_eof_is_an_error() {
    let e = err("FROM a\n\\\n");
    assert_eq!(e.kind, ParseErrorKind::UnknownInstruction(String::new()));
    assert_eq!(e.line, 2);
}

#[test]
fn unknown_instruction_names_keyword_and_column() {
    let e = err("FROM a\n  FORM b\n");
    assert_eq!(e.kind, ParseErrorKind::UnknownInstruction("FORM".into()));
    assert_eq!((e.line, e.column, e.text.as_str()), (2, 3, "FORM b"));
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn no_instructions() {
    assert_eq!(err("").kind, ParseErrorKind::NoInstructions);
    assert_eq!(err("# a\n\n  \n").kind, ParseErrorKind::NoInstructions);
    assert_eq!(err("# escape=`\n").kind, ParseErrorKind::NoInstructions);
}

#[test]
fn flags_are_split_off() {
    let n = one("COPY --from=a --chmod=755 -- x y");
    assert_eq!(n.flags, ["--from=a", "--chmod=755"]);
    assert_eq!(n.values, ["x", "y"]);
}

#[test]
fn exec_form_and_fallback() {
    let n = one(r#"ENTRYPOINT ["a", "b c"]"#);
    assert!(n.json);
    assert_eq!(n.values, ["a", "b c"]);
    let n = one(r#"CMD ["a", 'b']"#);
    assert!(!n.json);
    assert_eq!(n.values, [r#"["a", 'b']"#]);
    assert_eq!(err(r#"CMD ["a", 1]"#).kind, ParseErrorKind::NotStringArray);
}

#[test]
fn maybe_json_list() {
    assert_eq!(one("VOLUME /a  /b").values, ["/a", "/b"]);
    let n = one(r#"COPY ["a b", "/c"]"#);
    assert!(n.json);
    assert_eq!(n.values, ["a b", "/c"]);
}

#[test]
fn env_label_arg() {
    assert_eq!(one("ENV a b c").values, ["a", "b c", ""]);
    assert_eq!(
        one("LABEL a=1 'b'=\"2\"").values,
        ["a", "1", "=", "'b'", "\"2\"", "="]
    );
    assert_eq!(one("ARG a b=c").values, ["a", "b=c"]);
    assert_eq!(err("ENV a\n").kind, ParseErrorKind::MissingValue("ENV"));
    assert!(one("ENV").values.is_empty());
}

#[test]
fn whole_string_instructions() {
    for (text, value) in [
        ("MAINTAINER  A B <a@b>", "A B <a@b>"),
        ("USER a:b", "a:b"),
        ("WORKDIR /a b", "/a b"),
        ("STOPSIGNAL SIGKILL", "SIGKILL"),
    ] {
        assert_eq!(one(text).values, [value], "{text}");
    }
    assert_eq!(one("EXPOSE 80  443/udp").values, ["80", "443/udp"]);
    assert_eq!(one("FROM a AS b").values, ["a", "AS", "b"]);
}

#[test]
fn healthcheck_forms() {
    assert!(one("HEALTHCHECK").values.is_empty());
    assert_eq!(one("HEALTHCHECK NONE").values, ["NONE"]);
    let n = one("HEALTHCHECK --interval=1s CMD curl -f x");
    assert_eq!(n.flags, ["--interval=1s"]);
    assert_eq!(n.values, ["CMD", "curl -f x"]);
    assert!(!n.json);
    let n = one(r#"HEALTHCHECK CMD ["a", "b"]"#);
    assert!(n.json);
    assert_eq!(n.values, ["CMD", "a", "b"]);
}

#[test]
fn onbuild_nests() {
    let n = one("ONBUILD RUN [\"a\"]");
    let sub = n.sub_command.as_deref().unwrap();
    assert_eq!(sub.keyword, "run");
    assert!(sub.json);
    assert_eq!(sub.values, ["a"]);
    assert_eq!(sub.start_line, 1);
    assert_eq!(
        err("ONBUILD FOO x").kind,
        ParseErrorKind::UnknownInstruction("FOO".into())
    );
    let deep = format!("{}RUN x", "ONBUILD ".repeat(100));
    assert_eq!(err(&deep).kind, ParseErrorKind::NestingTooDeep);
}

#[test]
fn heredoc_first_word() {
    let n = one("RUN <<EOF\necho a\n  echo b\nEOF\n");
    assert_eq!(n.values, ["<<EOF"]);
    assert_eq!(n.heredocs.len(), 1);
    let h = &n.heredocs[0];
    assert_eq!(
        (h.name.as_str(), h.content.as_str()),
        ("EOF", "echo a\n  echo b\n")
    );
    assert!(h.expand && !h.chomp);
    assert_eq!((n.start_line, n.end_line), (1, 4));
}

#[test]
fn heredoc_after_a_command() {
    let n = one("RUN python3 <<EOF\nprint(1)\nEOF\n");
    assert_eq!(n.values, ["python3 <<EOF"]);
    assert_eq!(n.heredocs[0].content, "print(1)\n");
}

#[test]
fn several_heredocs_in_order() {
    let p = parse("FROM a\nRUN cat <<A && cat <<B\na\nA\nb\nB\nRUN x\n").unwrap();
    let h = &p.nodes[1].heredocs;
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].name.as_str(), h[0].content.as_str()), ("A", "a\n"));
    assert_eq!((h[1].name.as_str(), h[1].content.as_str()), ("B", "b\n"));
    assert_eq!(
        (p.nodes[2].start_line, p.nodes[2].values[0].as_str()),
        (7, "x")
    );
}

#[test]
fn chomped_heredoc() {
    let n = one("RUN <<-EOF\n\techo a\n\t\tEOF\n");
    let h = &n.heredocs[0];
    assert!(h.chomp);
    assert_eq!(h.content, "\techo a\n");
    assert_eq!(h.body(), "echo a\n");
}

#[test]
fn quoted_heredoc_does_not_expand() {
    for line in ["RUN <<'EOF'", "RUN <<\"EOF\""] {
        let n = one(&format!("{line}\n$HOME\nEOF\n"));
        assert_eq!(n.heredocs[0].name, "EOF");
        assert!(!n.heredocs[0].expand, "{line}");
    }
}

#[test]
fn copy_heredoc_and_redirect() {
    let n = one("COPY <<EOF /dest\nhello\nEOF\n");
    assert_eq!(n.values, ["<<EOF", "/dest"]);
    assert_eq!(n.heredocs[0].content, "hello\n");
    let n = one("RUN <<EOF > /file\nx\nEOF\n");
    assert_eq!(n.heredocs[0].name, "EOF");
}

#[test]
fn heredoc_keeps_comments_and_crlf() {
    let n = one("RUN <<EOF\r\n# not a comment\r\n\r\nEOF\r\n");
    assert_eq!(n.heredocs[0].content, "# not a comment\r\n\r\n");
}

#[test]
fn heredocs_only_where_allowed() {
    assert!(one("CMD cat <<EOF").heredocs.is_empty());
    assert!(one("RUN [\"cat\", \"<<EOF\"]").heredocs.is_empty());
    let n = one("ONBUILD RUN <<EOF\na\nEOF\n");
    assert_eq!(n.heredocs[0].content, "a\n");
}

#[test]
fn unterminated_heredoc() {
    let e = err("FROM a\nRUN <<EOF\nabc\n");
    assert_eq!(e.kind, ParseErrorKind::UnterminatedHeredoc("EOF".into()));
    assert_eq!((e.line, e.text.as_str()), (2, "RUN <<EOF"));
}

#[test]
fn trim_continuation_rules() {
    assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
    assert_eq!(trim_continuation("a\\  \t", '\\'), ("a", false));
    assert_eq!(trim_continuation("\\", '\\'), ("", false));
    assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
    assert_eq!(trim_continuation("a`", '`'), ("a", false));
    assert_eq!(trim_continuation("a\\", '`'), ("a\\", true));
}

#[test]
fn heredoc_delimiter_quoting_matches_buildkit() {
    let cases: &[(&str, &str, bool)] = &[
        ("RUN <<eo'f'\necho foo\neof\n", "eof", false),
        ("RUN <<eo\\'f\necho foo\neo'f\n", "eo'f", true),
        ("RUN <<'e'o\\'f\necho foo\neo'f\n", "eo'f", false),
        ("RUN <<'one two'\necho bar\none two\n", "one two", false),
        ("RUN <<$EOF\n$EOF\n", "$EOF", true),
        ("RUN <<  EOF  > foo\nEOF\n", "EOF", true),
        ("RUN 3<<EMPTY2\nEMPTY2\n", "EMPTY2", true),
        ("COPY <<file.txt /dest\nhello\nfile.txt\n", "file.txt", true),
        ("RUN <<-UNINDENT2\n\tbaz\n\tUNINDENT2\n", "UNINDENT2", true),
    ];
    for &(text, name, expand) in cases {
        let n = one(text);
        assert_eq!(n.heredocs.len(), 1, "{text}");
        assert_eq!(
            (n.heredocs[0].name.as_str(), n.heredocs[0].expand),
            (name, expand),
            "{text}"
        );
    }
    assert_eq!(one("RUN 3<<E\nE\n").heredocs[0].fd, 3);
    assert!(one("RUN \"<<NOHEREDOC\"").heredocs.is_empty());
}

#[test]
fn heredoc_bodies_are_read_in_opener_order() {
    let n = one("COPY <<X <<Y /dest\nY\nX\nX\nY\n");
    let bodies: Vec<_> = n
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    assert_eq!(bodies, [("X", "Y\n"), ("Y", "X\n")]);
}

#[test]
fn heredoc_in_non_heredoc_instruction_is_not_read() {
    let e = err("FROM a\nUSER <<INVALID\nINVALID\n");
    assert_eq!(e.kind, ParseErrorKind::UnknownInstruction("INVALID".into()));
    assert_eq!(e.line, 3);
}

#[test]
fn lines_longer_than_buildkits_scanner_reads_are_an_error() {
    // BuildKit's TestParseReturnsScannerErrors: a 64 KiB label value.
    let longest = format!("LABEL a={}", "b".repeat(MAX_LINE_LEN - "LABEL a=".len()));
    assert_eq!(nodes(&format!("FROM image\n{longest}\n")).len(), 2);
    assert_eq!(nodes(&format!("FROM image\n{longest}")).len(), 2);
    for text in [
        format!("FROM image\n\n{longest}b\n"),
        format!("FROM image\n# x\n{longest}b"),
        format!("FROM image\nRUN <<EOF\n{longest}b\nEOF\n"),
    ] {
        let e = err(&text);
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3, column 1: dockerfile line greater than max allowed size of 65535"
        );
    }
    // Continuation lines join into instructions longer than that.
    let piece = "b".repeat(MAX_LINE_LEN - 10);
    let joined = format!("FROM image\nRUN {}", format!("{piece} \\\n").repeat(4));
    assert!(nodes(&joined)[1].original.len() > 3 * MAX_LINE_LEN);
}
