//! Executes a parsed [`Template`] against a value, following Go's
//! `text/template` evaluation rules (missing map keys give the zero value,
//! as with Prometheus's `missingkey=zero` option). The executor tracks the
//! node being evaluated exactly where Go does, so error messages name the
//! same `line:col` and `<context>`.

use crate::ast::{Arg, Branch, BranchKind, Command, List, Node, Number, Pipe};
use crate::format::{sprintf_error, template_print};
use crate::funcs::{self, ExecEnv, FuncDef, Ty};
use crate::parse::Template;
use crate::strconv::quote;
use crate::value::{AlertFields, Value};

/// How deep `{{template}}` calls may nest. Go allows 100000 levels; we stop
/// far earlier to stay inside the stack, but report Go's message (runaway
/// recursion is the only realistic way to get here).
const MAX_TEMPLATE_DEPTH: usize = 100;
/// Bound on nested evaluation across template calls (stack safety).
const MAX_NEST: usize = 200;
const GO_MAX_EXEC_DEPTH: i64 = 100_000;

/// The node an error is reported at.
#[derive(Clone, Copy)]
enum At<'t> {
    Node(&'t Node),
    List(&'t List),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Arg(&'t Arg),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Node(n) => n.pos(),
            At::List(l) => l.pos,
            At::Pipe(p) => p.pos,
            At::Cmd(c) => c.pos,
            At::Arg(a) => a.pos(),
        }
    }

    fn text(&self) -> String {
        match self {
            At::Node(n) => n.to_string(),
            At::List(l) => l.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Arg(a) => a.to_string(),
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type X<T> = Result<T, String>;

/// A function or a method bound to its receiver.
enum Callee {
    Func(&'static FuncDef),
    Method(&'static FuncDef, Value),
}

struct State<'t, 'e, 'q> {
    tmpl: &'t Template,
    name: &'t str,
    node: Option<At<'t>>,
    vars: Vec<(&'t str, Value)>,
    depth: usize,
    nest: usize,
    env: &'e ExecEnv<'q>,
    out: String,
}

fn s(v: &str) -> Value {
    Value::from(v)
}

impl Template {
    /// Executes the template with `data` as dot. The error text is Go's,
    /// e.g. `template: t:1:3: executing "t" at <humanize "x">: error calling
    /// humanize: ...`.
    pub fn execute(&self, data: &Value, env: &ExecEnv) -> Result<String, String> {
        let Some((name, root)) = self.trees.get_key_value(&self.name) else {
            return Err(format!(
                "template: {}: {} is an incomplete or empty template",
                self.name,
                quote(&self.name)
            ));
        };
        let mut st = State {
            tmpl: self,
            name,
            node: None,
            vars: vec![("$", data.clone())],
            depth: 0,
            nest: 0,
            env,
            out: String::new(),
        };
        st.walk_list(data, root)?;
        Ok(st.out)
    }
}

/// The alert data as a template value.
pub(crate) fn alert_value(d: &crate::AlertData) -> Value {
    Value::Data(std::rc::Rc::new(AlertFields {
        labels: std::rc::Rc::new(d.labels.clone()),
        external_labels: std::rc::Rc::new(d.external_labels.clone()),
        external_url: d.external_url.into(),
        value: d.value,
    }))
}

fn is_hex_int(t: &str) -> bool {
    t.len() > 2 && (t.starts_with("0x") || t.starts_with("0X")) && !t.contains(['p', 'P'])
}

impl<'t> State<'t, '_, '_> {
    fn at(&mut self, a: At<'t>) {
        self.node = Some(a);
    }

    /// Formats an execution error like Go's `state.errorf`.
    fn errorf(&self, format: &str, args: &[Value]) -> String {
        let name = self.name.replace('%', "%%");
        let full = match self.node {
            None => format!("template: {name}: {format}"),
            Some(at) => {
                let pos = at.pos();
                let text = self.tmpl.text.get(..pos).unwrap_or(&self.tmpl.text);
                let col = match text.rfind('\n') {
                    None => pos,
                    Some(i) => pos - (i + 1),
                };
                let line = 1 + text.matches('\n').count();
                format!(
                    "template: {}:{}:{}: executing {} at <{}>: {}",
                    self.tmpl.name,
                    line,
                    col,
                    quote(&name),
                    at.text().replace('%', "%%"),
                    format
                )
            }
        };
        sprintf_error(&full, args)
    }

    fn enter(&mut self) -> X<()> {
        self.nest += 1;
        if self.nest > MAX_NEST {
            return Err(self.errorf(
                "exceeded maximum template depth (%v)",
                &[Value::Int(GO_MAX_EXEC_DEPTH)],
            ));
        }
        Ok(())
    }

    // --- variables ----------------------------------------------------------

    fn var_value(&self, name: &str) -> X<Value> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf("undefined variable: %s", &[s(name)])),
        }
    }

    fn set_var(&mut self, name: &str, v: Value) -> X<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.errorf("undefined variable: %s", &[s(name)])),
        }
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    // --- walking ------------------------------------------------------------

    fn walk_list(&mut self, dot: &Value, list: &'t List) -> X<Flow> {
        self.enter()?;
        self.at(At::List(list));
        for n in &list.nodes {
            match self.walk(dot, n)? {
                Flow::Normal => {}
                other => {
                    self.nest -= 1;
                    return Ok(other);
                }
            }
        }
        self.nest -= 1;
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> X<Flow> {
        self.at(At::Node(node));
        match node {
            Node::Text { text, .. } => self.out.push_str(text),
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    self.out.push_str(&template_print(&v));
                }
            }
            Node::Branch(b) => {
                return match b.kind {
                    BranchKind::Range => self.walk_range(dot, node, b),
                    _ => self.walk_if_or_with(dot, b),
                }
            }
            Node::Template { name, pipe, .. } => {
                self.walk_template(dot, node, name, pipe.as_ref())?
            }
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &'t Branch) -> X<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let r = if val.truth() {
            if b.kind == BranchKind::With {
                self.walk_list(&val, &b.list)
            } else {
                self.walk_list(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, node: &'t Node, b: &'t Branch) -> X<Flow> {
        self.at(At::Node(node));
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?.deref();
        let inner = self.vars.len();
        let items: Vec<(Value, Value)> = match &val {
            Value::Vector(v) => v
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), Value::Sample(Some(x.clone()))))
                .collect(),
            Value::StrMap(m) => m.iter().map(|(k, v)| (s(k), s(v))).collect(),
            Value::AnyMap(m) => m
                .iter()
                .map(|(k, v)| (s(k), Value::Iface(std::rc::Rc::new(v.clone()))))
                .collect(),
            Value::Invalid => Vec::new(),
            other => {
                let shown = template_print(other);
                return Err(self.errorf("range can't iterate over %v", &[Value::from(shown)]));
            }
        };
        if items.is_empty() {
            let r = match &b.else_list {
                Some(e) => self.walk_list(dot, e),
                None => Ok(Flow::Normal),
            };
            self.vars.truncate(mark);
            return r;
        }
        let decl = &b.pipe.decl;
        for (index, elem) in items {
            if let Some(first) = decl.first() {
                if b.pipe.is_assign {
                    let v = if decl.len() > 1 {
                        index.clone()
                    } else {
                        elem.clone()
                    };
                    self.set_var(first, v)?;
                } else {
                    self.set_top_var(1, elem.clone());
                }
            }
            if let Some(second) = decl.get(1) {
                if b.pipe.is_assign {
                    self.set_var(second, elem.clone())?;
                } else {
                    self.set_top_var(2, index.clone());
                }
            }
            let flow = self.walk_list(&elem, &b.list)?;
            self.vars.truncate(inner);
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        node: &'t Node,
        name: &str,
        pipe: Option<&'t Pipe>,
    ) -> X<()> {
        self.at(At::Node(node));
        let Some((key, tree)) = self.tmpl.trees.get_key_value(name) else {
            return Err(self.errorf("template %q not defined", &[s(name)]));
        };
        if self.depth >= MAX_TEMPLATE_DEPTH {
            return Err(self.errorf(
                "exceeded maximum template depth (%v)",
                &[Value::Int(GO_MAX_EXEC_DEPTH)],
            ));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Invalid,
        };
        let vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.name, key.as_str());
        self.depth += 1;
        let r = self.walk_list(&new_dot, tree);
        self.depth -= 1;
        self.name = saved_name;
        self.vars = vars;
        r.map(|_| ())
    }

    // --- evaluation -----------------------------------------------------------

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> X<Value> {
        self.enter()?;
        self.at(At::Pipe(pipe));
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            // Values in interface slots are unwrapped after every command.
            value = Some(self.eval_command(dot, cmd, value)?.unwrap_iface());
        }
        let v = value.unwrap_or(Value::Invalid);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((name.as_str(), v.clone()));
            }
        }
        self.nest -= 1;
        Ok(v)
    }

    fn not_a_function(&self, args: &[Arg], final_: &Option<Value>) -> X<()> {
        if args.len() > 1 || final_.is_some() {
            let first = args.first().map(ToString::to_string).unwrap_or_default();
            return Err(self.errorf(
                "can't give argument to non-function %s",
                &[Value::from(first)],
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, final_: Option<Value>) -> X<Value> {
        let Some(first) = cmd.args.first() else {
            return Err(self.errorf("empty command", &[]));
        };
        match first {
            Arg::Field { ident, .. } => {
                return self.eval_field_node(dot, first, ident, &cmd.args, final_)
            }
            Arg::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, final_),
            Arg::Identifier { name, .. } => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, final_)
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { ident, .. } => {
                return self.eval_variable_node(dot, first, ident, &cmd.args, final_)
            }
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command", &[])),
            Arg::Number(n) => self.ideal_constant(first, n),
            Arg::String { text, .. } => Ok(s(text)),
            _ => Err(self.errorf(
                "can't evaluate command %q",
                &[Value::from(first.to_string())],
            )),
        }
    }

    fn ideal_constant(&mut self, arg: &'t Arg, n: &Number) -> X<Value> {
        self.at(At::Arg(arg));
        if let Some((re, im)) = n.complex {
            return Ok(Value::Complex(re, im));
        }
        let t = n.text.as_str();
        if let Some(f) = n.float {
            if !is_hex_int(t) && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']) {
                return Ok(Value::Float(f));
            }
        }
        if let Some(i) = n.int {
            return Ok(Value::Int(i));
        }
        if n.uint.is_some() {
            return Err(self.errorf("%s overflows int", &[s(t)]));
        }
        Ok(Value::Invalid)
    }

    fn eval_field_node(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        ident: &'t [String],
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        self.at(At::Arg(node));
        self.eval_field_chain(dot, dot.clone(), node, ident, args, final_)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Value,
        chain: &'t Arg,
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, fields, .. } = chain else {
            return Err(self.errorf("internal error: not a chain", &[]));
        };
        if fields.is_empty() {
            return Err(self.errorf("internal error: no fields in evalChainNode", &[]));
        }
        if let Arg::Nil { .. } = node.as_ref() {
            return Err(self.errorf(
                "indirection through explicit nil in %s",
                &[Value::from(chain.to_string())],
            ));
        }
        let recv = self.eval_arg(dot, None, node)?;
        self.eval_field_chain(dot, recv, chain, fields, args, final_)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        ident: &'t [String],
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        self.at(At::Arg(node));
        let first = ident.first().map_or("$", String::as_str);
        let value = self.var_value(first)?;
        if ident.len() <= 1 {
            self.not_a_function(args, &final_)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, node, &ident[1..], args, final_)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: Value,
        node: &'t Arg,
        ident: &'t [String],
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        let Some((last, init)) = ident.split_last() else {
            return Ok(receiver);
        };
        let mut recv = receiver;
        for name in init {
            recv = self.eval_field(dot, name, node, &[], None, recv)?;
        }
        self.eval_field(dot, last, node, args, final_, recv)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        final_: Option<Value>,
        receiver: Value,
    ) -> X<Value> {
        if !receiver.is_valid() {
            return Ok(Value::Invalid);
        }
        let typ = receiver.type_name();
        let receiver = match receiver {
            Value::Iface(inner) => match inner.as_ref() {
                Value::Invalid => {
                    return Err(self.errorf("nil pointer evaluating %s.%s", &[s(typ), s(name)]));
                }
                v => v.clone(),
            },
            other => other,
        };
        if let Some(m) = funcs::method(&receiver, name) {
            return self.eval_call(
                dot,
                Callee::Method(m, receiver),
                At::Arg(node),
                name,
                args,
                final_,
            );
        }
        let has_args = args.len() > 1 || final_.is_some();
        let field = match &receiver {
            Value::Data(d) => match name {
                "Labels" => Some(Value::StrMap(d.labels.clone())),
                "ExternalLabels" => Some(Value::StrMap(d.external_labels.clone())),
                "ExternalURL" => Some(Value::String(d.external_url.clone())),
                "Value" => Some(Value::Float(d.value)),
                _ => None,
            },
            Value::Sample(Some(smp)) => match name {
                "Labels" => Some(Value::StrMap(std::rc::Rc::new(smp.labels.clone()))),
                "Value" => Some(Value::Float(smp.value)),
                _ => None,
            },
            Value::Sample(None) => {
                if name == "Labels" || name == "Value" {
                    return Err(self.errorf("nil pointer evaluating %s.%s", &[s(typ), s(name)]));
                }
                None
            }
            Value::StrMap(m) => {
                if has_args {
                    return Err(self.errorf("%s is not a method but has arguments", &[s(name)]));
                }
                return Ok(s(m.get(name).map_or("", String::as_str)));
            }
            Value::AnyMap(m) => {
                if has_args {
                    return Err(self.errorf("%s is not a method but has arguments", &[s(name)]));
                }
                let v = m.get(name).cloned().unwrap_or(Value::Invalid);
                return Ok(Value::Iface(std::rc::Rc::new(v)));
            }
            _ => None,
        };
        match field {
            Some(v) => {
                if has_args {
                    return Err(self.errorf(
                        "%s has arguments but cannot be invoked as function",
                        &[s(name)],
                    ));
                }
                Ok(v)
            }
            None => Err(self.errorf("can't evaluate field %s in type %s", &[s(name), s(typ)])),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        name: &'t str,
        cmd: At<'t>,
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        self.at(At::Arg(node));
        let Some(def) = funcs::lookup(name) else {
            return Err(self.errorf("%q is not a defined function", &[s(name)]));
        };
        self.eval_call(dot, Callee::Func(def), cmd, name, args, final_)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        callee: Callee,
        node: At<'t>,
        name: &str,
        args: &'t [Arg],
        final_: Option<Value>,
    ) -> X<Value> {
        let args = args.get(1..).unwrap_or(&[]);
        let def = match &callee {
            Callee::Func(d) | Callee::Method(d, _) => *d,
        };
        let num_in = args.len() + usize::from(final_.is_some());
        let fixed = def.params.len();
        if def.variadic.is_some() {
            if num_in < fixed {
                return Err(self.errorf(
                    "wrong number of args for %s: want at least %d got %d",
                    &[
                        s(name),
                        Value::Int(fixed as i64),
                        Value::Int(args.len() as i64),
                    ],
                ));
            }
        } else if num_in != fixed {
            return Err(self.errorf(
                "wrong number of args for %s: want %d got %d",
                &[s(name), Value::Int(fixed as i64), Value::Int(num_in as i64)],
            ));
        }
        if def.builtin && (name == "and" || name == "or") {
            let want = name == "or";
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(dot, Some(Ty::RValue), a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = self.validate_type(f, Some(Ty::RValue))?;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < fixed && i < args.len() {
            argv.push(self.eval_arg(dot, def.params.get(i).copied(), &args[i])?);
            i += 1;
        }
        if let Some(vt) = def.variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, Some(vt), &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = final_ {
            let t = match def.variadic {
                Some(vt) if num_in > fixed => Some(vt),
                _ => def.params.get(num_in - 1).copied(),
            };
            argv.push(self.validate_type(f, t)?);
        }
        let result = if def.builtin && name == "call" {
            // Go 1.19's `call` names only the type of what it was given.
            match argv.first() {
                None | Some(Value::Invalid) => Err("call of nil".to_string()),
                Some(f) => Err(format!("non-function of type {}", f.type_name())),
            }
        } else {
            match &callee {
                Callee::Func(_) => funcs::call(name, &argv, self.env),
                Callee::Method(_, recv) => funcs::call_method(recv, name, &argv),
            }
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at(node);
                Err(self.errorf("error calling %s: %w", &[s(name), Value::Error(e.into())]))
            }
        }
    }

    fn validate_type(&self, value: Value, ty: Option<Ty>) -> X<Value> {
        let Some(t) = ty else {
            return Ok(value);
        };
        let value = match value {
            Value::Iface(inner) => match inner.as_ref() {
                // A nil interface passes only where any value may.
                Value::Invalid if t.accepts(&Value::Invalid) => return Ok(Value::Invalid),
                Value::Invalid => {
                    return Err(self.errorf(
                        "wrong type for value; expected %s; got %s",
                        &[s(t.name()), s("interface {}")],
                    ))
                }
                v => v.clone(),
            },
            other => other,
        };
        if !value.is_valid() {
            if t.can_be_nil() {
                return Ok(t.nil());
            }
            return Err(self.errorf("invalid value; expected %s", &[s(t.name())]));
        }
        if t.accepts(&value) {
            return Ok(value);
        }
        Err(self.errorf(
            "wrong type for value; expected %s; got %s",
            &[s(t.name()), s(value.type_name())],
        ))
    }

    fn eval_arg(&mut self, dot: &Value, ty: Option<Ty>, arg: &'t Arg) -> X<Value> {
        self.at(At::Arg(arg));
        match arg {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), ty),
            Arg::Nil { .. } => {
                return match ty {
                    Some(t) if t.can_be_nil() => Ok(t.nil()),
                    _ => Err(self.errorf(
                        "cannot assign nil to %s",
                        &[s(ty.map_or("<nil>", Ty::name))],
                    )),
                }
            }
            Arg::Field { ident, .. } => {
                let v = self.eval_field_node(dot, arg, ident, std::slice::from_ref(arg), None)?;
                return self.validate_type(v, ty);
            }
            Arg::Variable { ident, .. } => {
                let v = self.eval_variable_node(dot, arg, ident, &[], None)?;
                return self.validate_type(v, ty);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, ty);
            }
            Arg::Identifier { name, .. } => {
                let v = self.eval_function(dot, arg, name, At::Arg(arg), &[], None)?;
                return self.validate_type(v, ty);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain_node(dot, arg, &[], None)?;
                return self.validate_type(v, ty);
            }
            _ => {}
        }
        match ty {
            Some(Ty::Str) => match arg {
                Arg::String { text, .. } => Ok(s(text)),
                _ => Err(self.errorf("expected string; found %s", &[Value::from(arg.to_string())])),
            },
            Some(t @ (Ty::SamplePtr | Ty::Vector)) => Err(self.errorf(
                "can't handle %s for arg of type %s",
                &[Value::from(arg.to_string()), s(t.name())],
            )),
            _ => self.eval_empty_interface(dot, arg),
        }
    }

    fn eval_empty_interface(&mut self, dot: &Value, n: &'t Arg) -> X<Value> {
        self.at(At::Arg(n));
        match n {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Field { ident, .. } => self.eval_field_node(dot, n, ident, &[], None),
            Arg::Identifier { name, .. } => self.eval_function(dot, n, name, At::Arg(n), &[], None),
            Arg::Nil { .. } => Err(self.errorf("evalEmptyInterface: nil (can't happen)", &[])),
            Arg::Number(num) => self.ideal_constant(n, num),
            Arg::String { text, .. } => Ok(s(text)),
            Arg::Variable { ident, .. } => self.eval_variable_node(dot, n, ident, &[], None),
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Chain { .. } => Err(self.errorf(
                "can't handle assignment of %s to empty interface argument",
                &[Value::from(n.to_string())],
            )),
        }
    }
}
