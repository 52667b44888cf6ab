//! Depth-first search over small dependency graphs (segments reading segments, rules
//! starting rules), iterative so that no input can exhaust the stack.

/// Visits every node of a graph of `nodes` nodes whose edges `edges(n)` gives, and
/// returns the nodes in post-order (each after everything it reaches). `on_cycle` is
/// called with the path of a cycle (the first node repeated at the end) for each back
/// edge found.
pub(crate) fn post_order(
    nodes: usize,
    edges: impl Fn(usize) -> Vec<usize>,
    mut on_cycle: impl FnMut(&[usize]),
) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; nodes];
    let mut order = Vec::with_capacity(nodes);
    for start in 0..nodes {
        if marks[start] != Mark::New {
            continue;
        }
        // (node, its edges, the next edge to follow)
        let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(start, edges(start), 0)];
        marks[start] = Mark::Open;
        while let Some((node, out, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&to) = out.get(*next) {
                *next += 1;
                match marks.get(to) {
                    Some(Mark::New) => {
                        marks[to] = Mark::Open;
                        stack.push((to, edges(to), 0));
                    }
                    Some(Mark::Open) => {
                        let path: Vec<usize> =
                            stack.iter().map(|(n, _, _)| *n).skip_while(|n| *n != to).chain([to]).collect();
                        on_cycle(&path);
                    }
                    _ => {}
                }
            } else {
                marks[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first_and_reports_cycles() {
        let edges = [vec![1], vec![2], vec![], vec![3]];
        let mut cycles = Vec::new();
        let order = post_order(4, |n| edges[n].clone(), |c| cycles.push(c.to_vec()));
        assert_eq!(order, [2, 1, 0, 3]);
        assert_eq!(cycles, [vec![3, 3]]);
    }
}
