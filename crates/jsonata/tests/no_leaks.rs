//! Closures that capture the scope they are stored in form reference cycles; every
//! evaluation must free them. A counting allocator checks that repeated evaluations do not
//! accumulate memory (this file holds a single test so the count is not shared with other
//! tests).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn repeated_evaluations_retain_no_memory() {
    let exprs = [
        "($f := function($n) { $n <= 1 ? 1 : $n * $f($n - 1) }; $f(10))",
        "($o := {\"f\": function() { $o }}; $o.f() ~> $type())",
        "($t := | a | {\"b\": 1} |; $t({\"a\": {}}))",
        "($c := function() { ($x := 0; function() { $x := $x + 1 }) }; $g := $c(); $g())",
        "Account.Order.Product{%.OrderID: $sum(Price)}",
        "($p := $substring(?, 1); $q := $p ~> $uppercase; $q(\"abc\"))",
        "$reduce([1..200], function($a, $v) { {\"x\": $a} }, {}) ~> $count()",
    ];
    let input =
        serde_json::json!({"Account": {"Order": [{"OrderID": "a", "Product": [{"Price": 1}]}]}});
    let env = jsonata::Environment::new();
    for src in exprs {
        let expr = jsonata::Expression::parse(src).expect("parses");
        for _ in 0..20 {
            expr.evaluate(&input, &env).expect("evaluates");
        }
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..200 {
            expr.evaluate(&input, &env).expect("evaluates");
        }
        let after = LIVE.load(Ordering::Relaxed);
        // a leak grows with the number of runs (a scope is well over 100 bytes, so at
        // least 20 KB here); the test harness's own threads may allocate a little meanwhile
        let retained = after - before;
        assert!(retained < 4096, "{retained} bytes retained by {src}");
    }
}
