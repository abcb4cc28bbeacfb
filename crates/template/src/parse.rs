//! Recursive-descent parser producing [`Template`]: the grammar, lookahead
//! and error texts follow Go's `text/template/parse` (Go 1.19, the version
//! Prometheus 2.42 was built with), so messages and line numbers agree.

use std::collections::HashMap;

use crate::ast::{Arg, Branch, BranchKind, Command, List, Node, Number, Pipe};
use crate::format::sprintf_error;
use crate::funcs::is_function;
use crate::lex::{Item, Lexer, Tok};
use crate::strconv::{self, quote, Unit};
use crate::value::Value;

/// Nesting limit for parentheses and control structures. Go allows deeper
/// parentheses (10000) but real templates never come close, and the limit
/// keeps parsing and execution well inside a thread's stack (the worst case
/// needs under 1 MiB in a debug build, under 256 KiB optimized).
const MAX_DEPTH: usize = 100;

/// A parsed template: the main body plus every `{{define}}`d template,
/// reusable for any number of executions.
#[derive(Clone, Debug)]
pub struct Template {
    pub(crate) name: String,
    pub(crate) text: String,
    pub(crate) trees: HashMap<String, List>,
}

impl Template {
    /// Parses `text` as a template called `name`. The error text is Go's,
    /// e.g. `template: name:1: function "foo" not defined`.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let mut p = Parser {
            lex: Lexer::new(text),
            look: Look::default(),
            vars: vec!["$".to_string()],
            parse_name: name.to_string(),
            range_depth: 0,
            action_line: 0,
            depth: 0,
            trees: HashMap::new(),
        };
        let root = p.parse()?;
        p.add(name, root)?;
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            trees: p.trees,
        })
    }

    /// The template's name, as given to [`Template::parse`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of all templates defined in the text (including the main one).
    pub fn defined_templates(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.trees.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// Result of parsing one item of a list: a node, or the `{{end}}` /
/// `{{else}}` that closes the list.
enum Parsed {
    Node(Node),
    End,
    Else(usize),
}

impl Parsed {
    fn describe(&self) -> String {
        match self {
            Parsed::Node(n) => n.to_string(),
            Parsed::End => "{{end}}".into(),
            Parsed::Else(_) => "{{else}}".into(),
        }
    }
}

/// Three-token lookahead, as Go's parser keeps per tree.
#[derive(Default)]
struct Look {
    token: [Option<Item>; 3],
    peek_count: usize,
}

type PResult<T> = Result<T, String>;

struct Parser<'a> {
    lex: Lexer<'a>,
    look: Look,
    vars: Vec<String>,
    parse_name: String,
    range_depth: usize,
    action_line: usize,
    depth: usize,
    trees: HashMap<String, List>,
}

fn eof_item() -> Item {
    Item {
        typ: Tok::Eof,
        pos: 0,
        val: String::new(),
        line: 1,
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::from(v.into())
}

fn empty_tree(list: &List) -> bool {
    list.nodes.iter().all(|n| match n {
        Node::Text { text, .. } => text.trim_matches(|c: char| c.is_whitespace()).is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    // --- token plumbing -------------------------------------------------

    fn slot(&self, i: usize) -> Item {
        self.look.token[i].clone().unwrap_or_else(eof_item)
    }

    fn next(&mut self) -> Item {
        if self.look.peek_count > 0 {
            self.look.peek_count -= 1;
        } else {
            self.look.token[0] = Some(self.lex.next_item());
        }
        self.slot(self.look.peek_count)
    }

    fn backup(&mut self) {
        self.look.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.look.token[1] = Some(t1);
        self.look.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.look.token[1] = Some(t1);
        self.look.token[2] = Some(t2);
        self.look.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.look.peek_count > 0 {
            return self.slot(self.look.peek_count - 1);
        }
        self.look.peek_count = 1;
        self.look.token[0] = Some(self.lex.next_item());
        self.slot(0)
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    // --- errors ---------------------------------------------------------

    /// Go builds the message by splicing the name and line into the format
    /// and then formatting the arguments; doing the same keeps odd names
    /// (containing `%`) rendering identically.
    fn errorf<T>(&self, format: &str, args: &[Value]) -> PResult<T> {
        let line = self.look.token[0].as_ref().map_or(1, |t| t.line);
        let full = format!("template: {}:{}: {}", self.parse_name, line, format);
        Err(sprintf_error(&full, args))
    }

    fn unexpected<T>(&self, token: &Item, context: &str) -> PResult<T> {
        if token.typ == Tok::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(
                    " in action started at {}:{}",
                    self.parse_name, self.action_line
                );
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf("%s%s", &[s(token.to_string()), s(extra)]);
        }
        self.errorf(
            "unexpected %s in %s",
            &[s(token.to_string()), s(context.to_string())],
        )
    }

    fn expect(&mut self, expected: Tok, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn enter(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return self.errorf("max expression depth exceeded", &[]);
        }
        self.depth += 1;
        Ok(())
    }

    // --- trees ----------------------------------------------------------

    fn add(&mut self, name: &str, root: List) -> PResult<()> {
        match self.trees.get(name) {
            Some(old) if !empty_tree(old) => {
                if !empty_tree(&root) {
                    return self.errorf(
                        "template: multiple definition of template %q",
                        &[s(name.to_string())],
                    );
                }
                Ok(())
            }
            _ => {
                self.trees.insert(name.to_string(), root);
                Ok(())
            }
        }
    }

    fn parse(&mut self) -> PResult<List> {
        let mut root = List {
            pos: self.peek().pos,
            nodes: Vec::new(),
        };
        while self.peek().typ != Tok::Eof {
            if self.peek().typ == Tok::LeftDelim {
                let delim = self.next();
                if self.next_non_space().typ == Tok::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Parsed::Node(n) => root.nodes.push(n),
                other => return self.errorf("unexpected %s", &[s(other.describe())]),
            }
        }
        Ok(root)
    }

    /// Runs `f` as a separate tree (a `define` or `block` body): fresh
    /// variables, lookahead and range depth, as Go's sub-parsers have.
    fn sub_tree<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        let look = std::mem::take(&mut self.look);
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let r = f(self);
        self.look = look;
        self.vars = vars;
        self.range_depth = range_depth;
        r
    }

    fn parse_definition(&mut self) -> PResult<()> {
        self.sub_tree(|p| {
            let context = "define clause";
            let name = p.next_non_space();
            if name.typ != Tok::String && name.typ != Tok::RawString {
                return p.unexpected(&name, context);
            }
            let name = match strconv::unquote(&name.val) {
                Ok(n) => n,
                Err(()) => return p.errorf("invalid syntax", &[]),
            };
            p.expect(Tok::RightDelim, context)?;
            let (root, end) = p.item_list()?;
            if !matches!(end, Parsed::End) {
                return p.errorf(
                    "unexpected %s in %s",
                    &[s(end.describe()), s(context.to_string())],
                );
            }
            p.add(&name, root)
        })
    }

    fn item_list(&mut self) -> PResult<(List, Parsed)> {
        let mut list = List {
            pos: self.peek_non_space().pos,
            nodes: Vec::new(),
        };
        while self.peek_non_space().typ != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.nodes.push(n),
                end => return Ok((list, end)),
            }
        }
        self.errorf("unexpected EOF", &[])
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            Tok::Text => Ok(Parsed::Node(Node::Text {
                pos: token.pos,
                text: token.val,
            })),
            Tok::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let token = self.next_non_space();
        match token.typ {
            Tok::Block => return self.block_control().map(Parsed::Node),
            Tok::Break | Tok::Continue => {
                let is_break = token.typ == Tok::Break;
                let what = if is_break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let t = self.next_non_space();
                if t.typ != Tok::RightDelim {
                    return self.unexpected(&t, what);
                }
                if self.range_depth == 0 {
                    return self.errorf("%s outside {{range}}", &[s(what.to_string())]);
                }
                return Ok(Parsed::Node(if is_break {
                    Node::Break { pos: token.pos }
                } else {
                    Node::Continue { pos: token.pos }
                }));
            }
            Tok::Else => return self.else_control(),
            Tok::End => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            Tok::If => return self.control(BranchKind::If).map(Parsed::Node),
            Tok::Range => return self.control(BranchKind::Range).map(Parsed::Node),
            Tok::Template => return self.template_control().map(Parsed::Node),
            Tok::With => return self.control(BranchKind::With).map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Parsed::Node(Node::Action { pos, pipe }))
    }

    fn else_control(&mut self) -> PResult<Parsed> {
        let peek = self.peek_non_space();
        if peek.typ == Tok::If {
            // "{{else if": leave the `if` pending for the enclosing if.
            return Ok(Parsed::Else(peek.pos));
        }
        let t = self.expect(Tok::RightDelim, "else")?;
        Ok(Parsed::Else(t.pos))
    }

    fn control(&mut self, kind: BranchKind) -> PResult<Node> {
        self.enter()?;
        let mark = self.vars.len();
        let r = self.control_inner(kind);
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kind: BranchKind) -> PResult<Node> {
        let context = match kind {
            BranchKind::If => "if",
            BranchKind::Range => "range",
            BranchKind::With => "with",
        };
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if kind == BranchKind::Range {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if kind == BranchKind::Range {
            self.range_depth -= 1;
        }
        let (list, next) = listed?;
        let mut else_list = None;
        if let Parsed::Else(else_pos) = next {
            if kind == BranchKind::If && self.peek().typ == Tok::If {
                self.next();
                let nested = self.control(BranchKind::If)?;
                else_list = Some(List {
                    pos: else_pos,
                    nodes: vec![nested],
                });
            } else {
                let (l, end) = self.item_list()?;
                if !matches!(end, Parsed::End) {
                    return self.errorf("expected end; found %s", &[s(end.describe())]);
                }
                else_list = Some(l);
            }
        }
        Ok(Node::Branch(Box::new(Branch {
            kind,
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })))
    }

    fn template_name(&self, token: &Item, context: &str) -> PResult<String> {
        match token.typ {
            Tok::String | Tok::RawString => match strconv::unquote(&token.val) {
                Ok(n) => Ok(n),
                Err(()) => self.errorf("invalid syntax", &[]),
            },
            _ => self.unexpected(token, context),
        }
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        self.enter()?;
        let (root, end) = self.sub_tree(|p| p.item_list())?;
        self.depth -= 1;
        if !matches!(end, Parsed::End) {
            return self.errorf(
                "unexpected %s in %s",
                &[s(end.describe()), s(context.to_string())],
            );
        }
        self.add(&name, root)?;
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let mut pipe = None;
        if self.next_non_space().typ != Tok::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(context, Tok::RightDelim)?);
        }
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe,
        })
    }

    // --- pipelines ------------------------------------------------------

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.typ != Tok::Variable {
                break;
            }
            self.next();
            let after = self.peek();
            let next = self.peek_non_space();
            if next.typ == Tok::Assign || next.typ == Tok::Declare {
                pipe.is_assign = next.typ == Tok::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                break;
            } else if next.typ == Tok::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        Tok::Variable | Tok::RightDelim | Tok::RightParen => continue,
                        _ => return self.errorf("range can only initialize variables", &[]),
                    }
                }
                return self.errorf("too many declarations in %s", &[s(context.to_string())]);
            } else if after.typ == Tok::Space {
                self.backup3(v, after);
            } else {
                self.backup2(v);
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            if token.typ == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match token.typ {
                Tok::Bool
                | Tok::CharConstant
                | Tok::Complex
                | Tok::Dot
                | Tok::Field
                | Tok::Identifier
                | Tok::Number
                | Tok::Nil
                | Tok::RawString
                | Tok::String
                | Tok::Variable
                | Tok::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf("missing value for %s", &[s(context.to_string())]);
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if let Some(
                Arg::Bool { .. }
                | Arg::Dot { .. }
                | Arg::Nil { .. }
                | Arg::Number(_)
                | Arg::String { .. },
            ) = c.args.first()
            {
                return self.errorf(
                    "non executable command in pipeline stage %d",
                    &[Value::Int(i as i64 + 1)],
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let mut cmd = Command {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let token = self.next();
            match token.typ {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&token, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command", &[]);
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let node = match self.term()? {
            None => return Ok(None),
            Some(n) => n,
        };
        if self.peek().typ != Tok::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == Tok::Field {
            let f = self.next().val;
            fields.push(f.get(1..).unwrap_or("").to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(fields);
                Arg::Field { pos, ident }
            }
            Arg::Variable { mut ident, .. } => {
                ident.extend(fields);
                Arg::Variable { pos, ident }
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number(_)
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return self.errorf("unexpected . after term %q", &[s(node.to_string())]);
            }
            other => Arg::Chain {
                pos,
                node: Box::new(other),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.typ {
            Tok::Identifier => {
                if !is_function(&token.val) {
                    return self.errorf("function %q not defined", &[s(token.val)]);
                }
                Arg::Identifier {
                    pos,
                    name: token.val,
                }
            }
            Tok::Dot => Arg::Dot { pos },
            Tok::Nil => Arg::Nil { pos },
            Tok::Variable => {
                if !self.vars.contains(&token.val) {
                    return self.errorf("undefined variable %q", &[s(token.val)]);
                }
                Arg::Variable {
                    pos,
                    ident: vec![token.val],
                }
            }
            Tok::Field => Arg::Field {
                pos,
                ident: vec![token.val.get(1..).unwrap_or("").to_string()],
            },
            Tok::Bool => Arg::Bool {
                pos,
                val: token.val == "true",
            },
            Tok::CharConstant | Tok::Complex | Tok::Number => {
                match new_number(pos, &token.val, token.typ) {
                    Ok(n) => Arg::Number(Box::new(n)),
                    Err(msg) => return self.errorf("%s", &[s(msg)]),
                }
            }
            Tok::LeftParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", Tok::RightParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            Tok::String | Tok::RawString => match strconv::unquote(&token.val) {
                Ok(text) => Arg::String {
                    pos,
                    quoted: token.val,
                    text,
                },
                Err(()) => return self.errorf("invalid syntax", &[]),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

fn float_as_int(f: f64) -> Option<i64> {
    (f.trunc() == f && (-TWO_63..TWO_63).contains(&f)).then_some(f as i64)
}

fn float_as_uint(f: f64) -> Option<u64> {
    (f.trunc() == f && (0.0..TWO_64).contains(&f)).then_some(f as u64)
}

fn simplify_complex(n: &mut Number, re: f64, im: f64) {
    n.complex = Some((re, im));
    if im == 0.0 {
        n.float = Some(re);
        n.int = float_as_int(re);
        n.uint = float_as_uint(re);
    }
}

/// Interprets a numeric token the way Go's parser does, recording whether it
/// fits an int, a uint, a float and a complex.
pub(crate) fn new_number(pos: usize, text: &str, typ: Tok) -> Result<Number, String> {
    let mut n = Number {
        pos,
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
        complex: None,
    };
    match typ {
        Tok::CharConstant => {
            let inner = text.get(1..).unwrap_or("");
            let (unit, tail) =
                strconv::unquote_char(inner, '\'').map_err(|()| "invalid syntax".to_string())?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            let r = match unit {
                Unit::Char(c) => c as u32,
                Unit::Byte(b) => u32::from(b),
            };
            n.int = Some(i64::from(r));
            n.uint = Some(u64::from(r));
            n.float = Some(f64::from(r));
            return Ok(n);
        }
        Tok::Complex => {
            let (re, im) = parse_complex(text)
                .ok_or_else(|| format!("illegal number syntax: {}", quote(text)))?;
            simplify_complex(&mut n, re, im);
            return Ok(n);
        }
        _ => {}
    }
    if let Some(body) = text.strip_suffix('i') {
        if let Ok(f) = strconv::parse_float(body) {
            simplify_complex(&mut n, 0.0, f);
            return Ok(n);
        }
    }
    let u = strconv::parse_uint_base0(text);
    if let Ok(u) = u {
        n.uint = Some(u);
    }
    if let Ok(i) = strconv::parse_int_base0(text) {
        n.int = Some(i);
        if i == 0 {
            n.uint = Some(u.unwrap_or(0));
        }
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Ok(f) = strconv::parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", quote(text)));
        }
        n.float = Some(f);
        n.int = float_as_int(f);
        n.uint = float_as_uint(f);
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    Ok(n)
}

/// `re±imi`, as produced by the lexer for complex constants.
fn parse_complex(text: &str) -> Option<(f64, f64)> {
    let body = text.strip_suffix('i')?;
    let bytes = body.as_bytes();
    let split = (1..bytes.len()).rev().find(|&i| {
        (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P')
    })?;
    let re = strconv::parse_float(&body[..split]).ok()?;
    let im = strconv::parse_float(&body[split..]).ok()?;
    Some((re, im))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str) -> String {
        Template::parse("t", t).err().unwrap_or_default()
    }

    #[test]
    fn parse_errors_match_go() {
        assert_eq!(err("{{"), "template: t:1: unclosed action");
        assert_eq!(
            err("{{ foo }}"),
            "template: t:1: function \"foo\" not defined"
        );
        assert_eq!(err("{{ $x }}"), "template: t:1: undefined variable \"$x\"");
        assert_eq!(err("{{ if 1 }}"), "template: t:1: unexpected EOF");
        assert_eq!(err("{{ end }}"), "template: t:1: unexpected {{end}}");
        assert_eq!(
            err("{{ 1 | 2 }}"),
            "template: t:1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            err("a\n{{ .x\n"),
            "template: t:3: unclosed action started at t:2"
        );
        assert_eq!(err("{{ 08 }}"), "template: t:1: integer overflow: \"08\"");
        assert_eq!(
            err("{{ break }}"),
            "template: t:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("{{ true.x }}"),
            "template: t:1: unexpected . after term \"true\""
        );
    }

    #[test]
    fn parses_nested_structures() {
        let t = Template::parse(
            "t",
            "{{define \"x\"}}X{{end}}{{range $i, $v := .}}{{if $i}}a{{else if $v}}b{{else}}c{{end}}{{end}}{{template \"x\"}}",
        );
        assert!(t.is_ok(), "{t:?}");
        let t = t.expect("parses");
        assert_eq!(t.defined_templates(), vec!["t", "x"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{{{{{}1{}}}}}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(err(&text), "template: t:1: max expression depth exceeded");
    }
}
