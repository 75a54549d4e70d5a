use tract_onnx::prelude::*;
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mut all = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for d in entries {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let r = (|| -> TractResult<Vec<(String,String)>> {
            let model = tract_onnx::onnx().model_for_path(d.join("model.onnx"))?;
            let typed = model.into_typed()?.into_decluttered()?;
            let mut v = vec![];
            for id in typed.eval_order()? {
                let n = typed.node(id);
                let nm = n.op.name().to_string();
                if nm == "Source" || nm == "Const" { continue; }
                let dbg = format!("{:?}", n.op).chars().take(200).collect::<String>();
                v.push((nm, dbg));
            }
            Ok(v)
        })();
        match r {
            Ok(v) => {
                let ops: Vec<String> = v.iter().map(|x| x.0.clone()).collect();
                println!("{name}: {}", ops.join(" "));
                for (nm, dbg) in v { all.entry(nm).or_default().push(format!("{name}: {dbg}")); }
            }
            Err(e) => println!("{name}: ERROR {}", format!("{e:?}").replace('\n', " ").chars().take(200).collect::<String>()),
        }
    }
    println!("=== by op");
    for (k, v) in all { println!("{k} ({})", v.len()); for x in v.iter().take(4) { println!("    {x}"); } }
}
