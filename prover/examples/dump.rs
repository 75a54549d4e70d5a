use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let path = std::env::args().nth(1).unwrap();
    let mut model = tract_onnx::onnx().model_for_path(&path)?;
    for i in 0..model.input_outlets()?.len() {
        let f = model.input_fact(i)?.clone();
        eprintln!("input {i}: {:?}", f);
    }
    let typed = model.into_typed()?.into_decluttered()?;
    let order = typed.eval_order()?;
    let mut counts = std::collections::BTreeMap::new();
    for id in order {
        let n = typed.node(id);
        *counts.entry(n.op.name().to_string()).or_insert(0) += 1;
        let desc = format!("{:?}", n.op);
        let desc: String = desc.chars().take(300).collect();
        println!("#{} {} [{}] in={:?} out={:?}", id, n.name, n.op.name(), n.inputs, n.outputs.iter().map(|o| format!("{:?}", o.fact).chars().take(80).collect::<String>()).collect::<Vec<_>>());
        println!("    {}", desc);
    }
    eprintln!("{:?}", counts);
    Ok(())
}
