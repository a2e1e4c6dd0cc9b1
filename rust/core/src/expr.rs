//! Constraint expressions and parameter paths: a small hand-written lexer and Pratt parser, and
//! an evaluator over a candidate's genes. No `eval`, no parser crate.
//!
//! Grammar (Python's precedence, lowest first):
//! `or`, `and`, `not`, comparisons (`== != < <= > >=`, chained like Python; `x in [..]`,
//! `x not in [..]`, `x is None`, `x is not None`), `+ -`, `* / // %`, unary `-`, `**`.
//! Operands: numbers, strings (`'..'` or `".."`), `True`, `False`, `None`, parentheses and
//! parameter paths: `a`, `a.b`, `a['any key'][0]`, `` `any key`.b ``, `[0].a` (a list space).
//! The right side of `in` is a literal list or tuple of constants.
//!
//! A parameter that is absent (knocked out, or inactive by its `when`) is `None`. An expression
//! that cannot be evaluated for a candidate (arithmetic on `None`, division by zero, ordering a
//! string against a number) is false: that candidate is rejected.

use std::fmt;

/// One step of a parameter path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path as the user writes it: `a.b['c'][0]`.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for (i, s) in path.iter().enumerate() {
        match s {
            Seg::Key(k) if is_ident(k) && !is_keyword(k) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&format!("[{k:?}]")),
            Seg::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "and" | "or" | "not" | "in" | "is" | "None" | "True" | "False"
    )
}

/// A syntax error: the character position (0-based) and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error at position {}: {}", self.pos, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    /// A backtick-quoted key.
    Quoted(String),
    Op(&'static str),
    End,
}

const OPS: [&str; 20] = [
    "**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",",
    ".", "!",
];

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, message: String| SyntaxError { pos, message };
    while i < chars.len() {
        // Positions in messages count characters, not bytes.
        let (byte, c) = chars[i];
        let pos = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let start = i;
            let mut float = false;
            while i < chars.len() {
                let ch = chars[i].1;
                if ch.is_ascii_digit() || ch == '_' {
                    i += 1;
                } else if ch == '.' && !float {
                    float = true;
                    i += 1;
                } else if (ch == 'e' || ch == 'E')
                    && chars
                        .get(i + 1)
                        .is_some_and(|(_, d)| d.is_ascii_digit() || *d == '-' || *d == '+')
                {
                    float = true;
                    i += 2;
                } else {
                    break;
                }
            }
            let s: String = chars[start..i]
                .iter()
                .map(|(_, c)| *c)
                .filter(|&c| c != '_')
                .collect();
            let tok = if float {
                s.parse::<f64>()
                    .map(Tok::Float)
                    .map_err(|_| err(pos, format!("bad number {s:?}")))?
            } else {
                s.parse::<i64>()
                    .map(Tok::Int)
                    .map_err(|_| err(pos, format!("integer {s} does not fit in 64 bits")))?
            };
            out.push((tok, pos));
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&(_, ch)) = chars.get(i) else {
                    return Err(err(pos, "unterminated string".into()));
                };
                i += 1;
                if ch == c {
                    break;
                }
                if ch == '\\' && c != '`' {
                    let Some(&(_, esc)) = chars.get(i) else {
                        return Err(err(pos, "unterminated string".into()));
                    };
                    i += 1;
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push((
                if c == '`' {
                    Tok::Quoted(s)
                } else {
                    Tok::Str(s)
                },
                pos,
            ));
            continue;
        }
        if c == '_' || c.is_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].1 == '_' || chars[i].1.is_alphanumeric()) {
                i += 1;
            }
            let s: String = chars[start..i].iter().map(|(_, c)| *c).collect();
            out.push((Tok::Ident(s), pos));
            continue;
        }
        let rest = &text[byte..];
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(&"!") | None => return Err(err(pos, format!("unexpected character {c:?}"))),
            Some(op) => {
                out.push((Tok::Op(op), pos));
                i += op.chars().count();
            }
        }
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// A constant of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed expression; names are still paths (see [`Ast::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Ast<N> {
    Const(Lit),
    Name(N),
    Not(Box<Ast<N>>),
    And(Box<Ast<N>>, Box<Ast<N>>),
    Or(Box<Ast<N>>, Box<Ast<N>>),
    Neg(Box<Ast<N>>),
    Bin(BinOp, Box<Ast<N>>, Box<Ast<N>>),
    /// `a < b <= c`: operands and the operators between them.
    Cmp(Vec<Ast<N>>, Vec<CmpOp>),
    In(Box<Ast<N>>, Vec<Lit>, bool),
    IsNone(Box<Ast<N>>, bool),
}

/// A name as parsed: its path and its position in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub path: Vec<Seg>,
    pub pos: usize,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }
    fn pos(&self) -> usize {
        self.toks[self.at].1
    }
    fn next(&mut self) -> Tok {
        let t = self.toks[self.at].0.clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }
    fn expect_op(&mut self, op: &str) -> Result<(), SyntaxError> {
        if self.is_op(op) {
            self.next();
            Ok(())
        } else {
            Err(self.error(&format!("expected '{op}'")))
        }
    }
    fn error(&self, expected: &str) -> SyntaxError {
        let found = match self.peek() {
            Tok::End => "the end".to_string(),
            Tok::Int(i) => format!("{i}"),
            Tok::Float(f) => format!("{f}"),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Op(o) => format!("'{o}'"),
        };
        SyntaxError {
            pos: self.pos(),
            message: format!("{expected}, found {found}"),
        }
    }

    /// Binding powers: or 1, and 2, not 3, comparison 4, + - 5, * / // % 6, unary - 7, ** 8.
    fn expr(&mut self, min_bp: u8) -> Result<Ast<Name>, SyntaxError> {
        let mut lhs = self.prefix()?;
        loop {
            let (bp, kind) = match self.peek() {
                Tok::Ident(w) if w == "or" => (1, 'o'),
                Tok::Ident(w) if w == "and" => (2, 'a'),
                Tok::Ident(w) if w == "in" || w == "is" || w == "not" => (4, 'c'),
                Tok::Op("==" | "!=" | "<" | "<=" | ">" | ">=") => (4, 'c'),
                Tok::Op("+" | "-") => (5, 'b'),
                Tok::Op("*" | "/" | "//" | "%") => (6, 'b'),
                Tok::Op("**") => (8, 'p'),
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            lhs = match kind {
                'o' => {
                    self.next();
                    Ast::Or(Box::new(lhs), Box::new(self.expr(2)?))
                }
                'a' => {
                    self.next();
                    Ast::And(Box::new(lhs), Box::new(self.expr(3)?))
                }
                'c' => self.comparison(lhs)?,
                'p' => {
                    self.next();
                    // Right-associative, and binds tighter than a unary minus on its left only.
                    Ast::Bin(BinOp::Pow, Box::new(lhs), Box::new(self.expr(7)?))
                }
                _ => {
                    let op = match self.next() {
                        Tok::Op("+") => BinOp::Add,
                        Tok::Op("-") => BinOp::Sub,
                        Tok::Op("*") => BinOp::Mul,
                        Tok::Op("/") => BinOp::Div,
                        Tok::Op("//") => BinOp::FloorDiv,
                        _ => BinOp::Mod,
                    };
                    Ast::Bin(op, Box::new(lhs), Box::new(self.expr(bp + 1)?))
                }
            };
        }
        Ok(lhs)
    }

    fn comparison(&mut self, first: Ast<Name>) -> Result<Ast<Name>, SyntaxError> {
        if self.is_word("is") {
            self.next();
            let negated = self.is_word("not");
            if negated {
                self.next();
            }
            if !self.is_word("None") {
                return Err(self.error("'is' compares with None only: expected None"));
            }
            self.next();
            return Ok(Ast::IsNone(Box::new(first), negated));
        }
        if self.is_word("in") || self.is_word("not") {
            let negated = self.is_word("not");
            self.next();
            if negated {
                if !self.is_word("in") {
                    return Err(self.error("expected 'in' after 'not'"));
                }
                self.next();
            }
            let values = self.literal_list()?;
            return Ok(Ast::In(Box::new(first), values, negated));
        }
        let mut operands = vec![first];
        let mut ops = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::Ne,
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                _ => break,
            };
            self.next();
            ops.push(op);
            operands.push(self.expr(5)?);
        }
        Ok(Ast::Cmp(operands, ops))
    }

    fn literal_list(&mut self) -> Result<Vec<Lit>, SyntaxError> {
        let close = if self.is_op("[") {
            "]"
        } else if self.is_op("(") {
            ")"
        } else {
            return Err(self.error("expected a list of constants after 'in', like [1, 2]"));
        };
        self.next();
        let mut values = Vec::new();
        while !self.is_op(close) {
            values.push(self.constant()?);
            if self.is_op(",") {
                self.next();
            } else if !self.is_op(close) {
                return Err(self.error(&format!("expected ',' or '{close}'")));
            }
        }
        self.next();
        Ok(values)
    }

    fn constant(&mut self) -> Result<Lit, SyntaxError> {
        let negative = self.is_op("-");
        if negative {
            self.next();
        }
        let lit = match self.peek().clone() {
            Tok::Int(i) => Lit::Int(if negative { -i } else { i }),
            Tok::Float(f) => Lit::Float(if negative { -f } else { f }),
            Tok::Str(s) if !negative => Lit::Str(s),
            Tok::Ident(w) if !negative && w == "True" => Lit::Bool(true),
            Tok::Ident(w) if !negative && w == "False" => Lit::Bool(false),
            Tok::Ident(w) if !negative && w == "None" => Lit::None,
            _ => return Err(self.error("expected a constant")),
        };
        self.next();
        Ok(lit)
    }

    fn prefix(&mut self) -> Result<Ast<Name>, SyntaxError> {
        if self.is_word("not") {
            self.next();
            return Ok(Ast::Not(Box::new(self.expr(3)?)));
        }
        if self.is_op("-") {
            self.next();
            return Ok(Ast::Neg(Box::new(self.expr(7)?)));
        }
        if self.is_op("+") {
            self.next();
            return self.expr(7);
        }
        if self.is_op("(") {
            self.next();
            let inner = self.expr(0)?;
            self.expect_op(")")?;
            return Ok(inner);
        }
        let pos = self.pos();
        let lit = match self.peek().clone() {
            Tok::Int(i) => Lit::Int(i),
            Tok::Float(f) => Lit::Float(f),
            Tok::Str(s) => Lit::Str(s),
            Tok::Ident(w) if w == "True" => Lit::Bool(true),
            Tok::Ident(w) if w == "False" => Lit::Bool(false),
            Tok::Ident(w) if w == "None" => Lit::None,
            Tok::Ident(w) if is_keyword(&w) => {
                return Err(self.error("expected an operand"));
            }
            Tok::Ident(_) | Tok::Quoted(_) | Tok::Op("[") => {
                let path = self.path()?;
                return Ok(Ast::Name(Name { path, pos }));
            }
            _ => return Err(self.error("expected an operand")),
        };
        self.next();
        Ok(Ast::Const(lit))
    }

    fn path(&mut self) -> Result<Vec<Seg>, SyntaxError> {
        let mut path = Vec::new();
        match self.peek().clone() {
            Tok::Ident(s) | Tok::Quoted(s) => {
                self.next();
                path.push(Seg::Key(s));
            }
            Tok::Op("[") => path.push(self.bracket()?),
            _ => return Err(self.error("expected a parameter name")),
        }
        loop {
            if self.is_op(".") {
                self.next();
                match self.next() {
                    Tok::Ident(s) | Tok::Quoted(s) => path.push(Seg::Key(s)),
                    _ => {
                        self.at -= 1;
                        return Err(self.error("expected a key after '.'"));
                    }
                }
            } else if self.is_op("[") {
                path.push(self.bracket()?);
            } else {
                return Ok(path);
            }
        }
    }

    fn bracket(&mut self) -> Result<Seg, SyntaxError> {
        self.expect_op("[")?;
        let seg = match self.peek().clone() {
            Tok::Str(s) => Seg::Key(s),
            Tok::Int(i) if i >= 0 => Seg::Index(i as usize),
            _ => return Err(self.error("expected a key string or an index")),
        };
        self.next();
        self.expect_op("]")?;
        Ok(seg)
    }
}

/// Parses a constraint expression.
pub fn parse(text: &str) -> Result<Ast<Name>, SyntaxError> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
    };
    if matches!(p.peek(), Tok::End) {
        return Err(p.error("expected an expression"));
    }
    let ast = p.expr(0)?;
    if !matches!(p.peek(), Tok::End) {
        return Err(p.error("expected an operator or the end"));
    }
    Ok(ast)
}

/// Parses a parameter path alone (`a.b`, `a['x y']`, `[0].a`), as `when=` takes it.
pub fn parse_path(text: &str) -> Result<Vec<Seg>, SyntaxError> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
    };
    let path = p.path()?;
    if !matches!(p.peek(), Tok::End) {
        return Err(p.error("expected the end of the path"));
    }
    Ok(path)
}

impl<N> Ast<N> {
    /// Replaces every name by what `f` makes of it, stopping at the first error.
    pub fn resolve<M, E>(self, f: &mut dyn FnMut(N) -> Result<M, E>) -> Result<Ast<M>, E> {
        Ok(match self {
            Ast::Const(l) => Ast::Const(l),
            Ast::Name(n) => Ast::Name(f(n)?),
            Ast::Not(a) => Ast::Not(Box::new(a.resolve(f)?)),
            Ast::Neg(a) => Ast::Neg(Box::new(a.resolve(f)?)),
            Ast::And(x, y) => Ast::And(Box::new(x.resolve(f)?), Box::new(y.resolve(f)?)),
            Ast::Or(x, y) => Ast::Or(Box::new(x.resolve(f)?), Box::new(y.resolve(f)?)),
            Ast::Bin(op, x, y) => Ast::Bin(op, Box::new(x.resolve(f)?), Box::new(y.resolve(f)?)),
            Ast::Cmp(xs, ops) => Ast::Cmp(
                xs.into_iter()
                    .map(|x| x.resolve(f))
                    .collect::<Result<_, E>>()?,
                ops,
            ),
            Ast::In(x, v, neg) => Ast::In(Box::new(x.resolve(f)?), v, neg),
            Ast::IsNone(x, neg) => Ast::IsNone(Box::new(x.resolve(f)?), neg),
        })
    }
}

/// A value during evaluation; strings borrow from the space or the expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum V<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl<'a> V<'a> {
    pub fn of_lit(l: &'a Lit) -> V<'a> {
        match l {
            Lit::None => V::None,
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::Int(*i),
            Lit::Float(f) => V::Float(*f),
            Lit::Str(s) => V::Str(s),
        }
    }

    fn truthy(self) -> bool {
        match self {
            V::None => false,
            V::Bool(b) => b,
            V::Int(i) => i != 0,
            V::Float(f) => f != 0.0,
            V::Str(s) => !s.is_empty(),
        }
    }

    /// Numbers (bools count as 0 and 1, as in Python).
    fn number(self) -> Option<Num> {
        match self {
            V::Bool(b) => Some(Num::I(i64::from(b))),
            V::Int(i) => Some(Num::I(i)),
            V::Float(f) => Some(Num::F(f)),
            _ => None,
        }
    }

    /// Python's `==`: numbers by value, strings by text, `None` only equals `None`.
    pub fn equals(self, other: V<'_>) -> bool {
        match (self, other) {
            (V::None, V::None) => true,
            (V::Str(a), V::Str(b)) => a == b,
            _ => match (self.number(), other.number()) {
                (Some(Num::I(a)), Some(Num::I(b))) => a == b,
                (Some(a), Some(b)) => a.f() == b.f(),
                _ => false,
            },
        }
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// The evaluation failed for this candidate (the constraint then rejects it).
#[derive(Debug)]
pub struct EvalError;

type Eval<'a> = Result<V<'a>, EvalError>;

fn arith<'a>(op: BinOp, a: V<'a>, b: V<'a>) -> Eval<'a> {
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        return Err(EvalError);
    };
    if let (Num::I(x), Num::I(y)) = (x, y) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div => {
                return if y == 0 {
                    Err(EvalError)
                } else {
                    Ok(V::Float(x as f64 / y as f64))
                }
            }
            // Python floors; Rust's Euclidean division differs for a negative divisor.
            BinOp::FloorDiv => x
                .checked_div_euclid(y)
                .zip(x.checked_rem_euclid(y))
                .map(|(q, r)| q - i64::from(y < 0 && r != 0)),
            BinOp::Mod => x
                .checked_rem_euclid(y)
                .map(|r| if y < 0 && r != 0 { r + y } else { r }),
            BinOp::Pow => {
                if y < 0 {
                    return Ok(V::Float((x as f64).powf(y as f64)));
                }
                u32::try_from(y).ok().and_then(|e| x.checked_pow(e))
            }
        };
        return r.map(V::Int).ok_or(EvalError);
    }
    let (x, y) = (x.f(), y.f());
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div | BinOp::FloorDiv | BinOp::Mod if y == 0.0 => return Err(EvalError),
        BinOp::Div => x / y,
        BinOp::FloorDiv => (x / y).floor(),
        BinOp::Mod => x - y * (x / y).floor(),
        BinOp::Pow => x.powf(y),
    };
    if r.is_nan() {
        Err(EvalError)
    } else {
        Ok(V::Float(r))
    }
}

fn compare(op: CmpOp, a: V<'_>, b: V<'_>) -> Result<bool, EvalError> {
    match op {
        CmpOp::Eq => return Ok(a.equals(b)),
        CmpOp::Ne => return Ok(!a.equals(b)),
        _ => {}
    }
    let ord = match (a, b) {
        (V::Str(x), V::Str(y)) => x.cmp(y),
        _ => match (a.number(), b.number()) {
            (Some(Num::I(x)), Some(Num::I(y))) => x.cmp(&y),
            (Some(x), Some(y)) => x.f().partial_cmp(&y.f()).ok_or(EvalError)?,
            _ => return Err(EvalError),
        },
    };
    use std::cmp::Ordering::{Greater, Less};
    Ok(match op {
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        _ => ord != Less,
    })
}

impl Ast<usize> {
    /// Evaluates with `value(i)` giving parameter `i`'s value (`V::None` when absent).
    pub fn eval<'a>(&'a self, value: &impl Fn(usize) -> V<'a>) -> Eval<'a> {
        Ok(match self {
            Ast::Const(l) => V::of_lit(l),
            Ast::Name(i) => value(*i),
            Ast::Not(a) => V::Bool(!a.eval(value)?.truthy()),
            Ast::And(x, y) => {
                let a = x.eval(value)?;
                if a.truthy() {
                    y.eval(value)?
                } else {
                    a
                }
            }
            Ast::Or(x, y) => {
                let a = x.eval(value)?;
                if a.truthy() {
                    a
                } else {
                    y.eval(value)?
                }
            }
            Ast::Neg(a) => arith(BinOp::Sub, V::Int(0), a.eval(value)?)?,
            Ast::Bin(op, x, y) => arith(*op, x.eval(value)?, y.eval(value)?)?,
            Ast::Cmp(xs, ops) => {
                let mut left = xs[0].eval(value)?;
                for (op, x) in ops.iter().zip(&xs[1..]) {
                    let right = x.eval(value)?;
                    if !compare(*op, left, right)? {
                        return Ok(V::Bool(false));
                    }
                    left = right;
                }
                if ops.is_empty() {
                    left
                } else {
                    V::Bool(true)
                }
            }
            Ast::In(x, values, negated) => {
                let a = x.eval(value)?;
                let found = values.iter().any(|l| a.equals(V::of_lit(l)));
                V::Bool(found != *negated)
            }
            Ast::IsNone(x, negated) => V::Bool((x.eval(value)? == V::None) != *negated),
        })
    }

    /// Whether the expression holds (false when it cannot be evaluated).
    pub fn holds<'a>(&'a self, value: &impl Fn(usize) -> V<'a>) -> bool {
        self.eval(value).is_ok_and(V::truthy)
    }

    /// The parameters the expression reads.
    pub fn names(&self, out: &mut Vec<usize>) {
        match self {
            Ast::Const(_) => {}
            Ast::Name(i) => out.push(*i),
            Ast::Not(a) | Ast::Neg(a) | Ast::In(a, ..) | Ast::IsNone(a, _) => a.names(out),
            Ast::And(x, y) | Ast::Or(x, y) | Ast::Bin(_, x, y) => {
                x.names(out);
                y.names(out);
            }
            Ast::Cmp(xs, _) => xs.iter().for_each(|x| x.names(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str, vals: &[V<'static>]) -> Option<bool> {
        let names = ["a", "b", "c"];
        let ast = parse(text)
            .unwrap()
            .resolve(&mut |n: Name| match &n.path[..] {
                [Seg::Key(k)] => names.iter().position(|x| x == k).ok_or(()),
                _ => Err(()),
            })
            .unwrap();
        let vals = vals.to_vec();
        let r = ast.eval(&|i| vals[i]).ok().map(V::truthy);
        r
    }

    #[test]
    fn arithmetic_and_comparisons_follow_python() {
        let v = [V::Int(32), V::Int(16), V::None];
        assert_eq!(ev("a * b <= 1024", &v), Some(true));
        assert_eq!(ev("a * b < 512", &v), Some(false));
        assert_eq!(ev("1 < a < 64", &v), Some(true));
        assert_eq!(ev("1 < a < 16", &v), Some(false));
        assert_eq!(ev("a // 5 == 6 and a % 5 == 2", &v), Some(true));
        assert_eq!(ev("-7 // 2 == -4 and -7 % 2 == 1", &v), Some(true));
        assert_eq!(
            ev("7 // -2 == -4 and 7 % -2 == -1 and -7 // -2 == 3", &v),
            Some(true)
        );
        assert_eq!(ev("2 ** 3 ** 2 == 512", &v), Some(true));
        assert_eq!(ev("-2 ** 2 == -4", &v), Some(true));
        assert_eq!(ev("a / b == 2.0", &v), Some(true));
        assert_eq!(ev("a in [1, 32] and b not in (1, 2)", &v), Some(true));
        assert_eq!(ev("c is None and a is not None", &v), Some(true));
        assert_eq!(ev("c == 0 or b", &v), Some(true));
        assert_eq!(ev("not c", &v), Some(true));
        // Arithmetic on an absent parameter cannot be evaluated: the constraint rejects.
        assert_eq!(ev("c + 1 > 0", &v), None);
        assert_eq!(ev("c is None or c + 1 > 0", &v), Some(true));
        assert_eq!(ev("a / 0 > 1", &v), None);
        let s = [V::Str("-O3"), V::Bool(true), V::Float(0.5)];
        assert_eq!(ev("a == '-O3' and b == 1 and c < 1", &s), Some(true));
        assert_eq!(ev("a < 3", &s), None);
        assert_eq!(ev("a != 3", &s), Some(true));
    }

    #[test]
    fn syntax_errors_give_the_position() {
        let e = parse("bx * by <= ").unwrap_err();
        assert_eq!(e.pos, 11);
        assert!(e.message.contains("expected an operand"), "{e}");
        let e = parse("bx ** (by").unwrap_err();
        assert_eq!(e.pos, 9);
        assert_eq!(parse("a is 3").unwrap_err().pos, 5);
        assert_eq!(parse("a in b").unwrap_err().pos, 5);
        assert_eq!(parse("a $ b").unwrap_err().pos, 2);
        assert_eq!(parse("a b").unwrap_err().pos, 2);
        assert_eq!(parse("'open").unwrap_err().pos, 0);
        // Characters, not bytes.
        assert_eq!(parse("größe > ").unwrap_err().pos, 8);
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("a.b['c d'][0].`-O2`").unwrap(),
            vec![
                Seg::Key("a".into()),
                Seg::Key("b".into()),
                Seg::Key("c d".into()),
                Seg::Index(0),
                Seg::Key("-O2".into())
            ]
        );
        assert_eq!(
            parse_path("[1].x").unwrap(),
            vec![Seg::Index(1), Seg::Key("x".into())]
        );
        assert!(parse_path("a +").is_err());
        assert_eq!(
            display_path(&parse_path("a['c d'][2]").unwrap()),
            "a[\"c d\"][2]"
        );
    }
}
