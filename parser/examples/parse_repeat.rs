//! Parses a Dockerfile N times (raw, then typed) so CPU time can be measured with
//! `perf stat -e task-clock` independently of machine load. Usage: `parse_repeat FILE N MODE`
//! with MODE `raw` or `typed`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(count), Some(mode)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: parse_repeat FILE N raw|typed");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path).expect("read the Dockerfile");
    let count: usize = count.parse().expect("a count");
    let mut nodes = 0;
    for _ in 0..count {
        nodes += match mode.as_str() {
            "raw" => parser::parse_raw(&text).map(|r| r.nodes.len()).unwrap_or(0),
            _ => parser::parse(&text).map(|d| d.stages.len()).unwrap_or(0),
        };
    }
    println!("{} bytes x {count}: {nodes}", text.len());
}
