//! Strongly connected components of dependency graphs (segments reading segments, rules
//! starting rules), iterative so that no input can exhaust the stack, and linear in
//! nodes plus edges so that no input can make a compile quadratic.

/// The strongly connected components of a graph of `nodes` nodes whose edges `edges(n)`
/// gives (each node's edges are asked for once), dependencies first: every component
/// comes after the components it reaches. In an acyclic graph each component is a
/// single node, and the concatenation is a post-order. Tarjan's algorithm, iterative.
pub(crate) fn components(nodes: usize, mut edges: impl FnMut(usize) -> Vec<usize>) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; nodes];
    let mut low = vec![0usize; nodes];
    let mut on_stack = vec![false; nodes];
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    let mut next_index = 0usize;
    for start in 0..nodes {
        if index[start] != UNSEEN {
            continue;
        }
        // (node, its edges, the next edge to follow)
        let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        work.push((start, edges(start), 0));
        while let Some((node, out_edges, next)) = work.last_mut() {
            let node = *node;
            if let Some(&to) = out_edges.get(*next) {
                *next += 1;
                if to >= nodes {
                    continue;
                }
                if index[to] == UNSEEN {
                    index[to] = next_index;
                    low[to] = next_index;
                    next_index += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    work.push((to, edges(to), 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(index[to]);
                }
            } else {
                work.pop();
                if let Some((parent, _, _)) = work.last() {
                    low[*parent] = low[*parent].min(low[node]);
                }
                if low[node] == index[node] {
                    let mut component = Vec::new();
                    while let Some(n) = stack.pop() {
                        on_stack[n] = false;
                        component.push(n);
                        if n == node {
                            break;
                        }
                    }
                    component.reverse();
                    out.push(component);
                }
            }
        }
    }
    out
}

/// Whether a component from [`components`] holds a cycle: more than one node, or a node
/// with an edge to itself.
pub(crate) fn is_cycle(component: &[usize], edges: impl Fn(usize) -> Vec<usize>) -> bool {
    match component {
        [single] => edges(*single).contains(single),
        _ => !component.is_empty(),
    }
}

/// A shortest cycle through the first node of a cyclic `component`, as a path with the
/// first node repeated at the end; a breadth-first search inside the component, linear
/// in its size.
pub(crate) fn cycle_through_first(component: &[usize], edges: impl Fn(usize) -> Vec<usize>) -> Vec<usize> {
    let Some(&start) = component.first() else {
        return Vec::new();
    };
    let inside: hashbrown::HashSet<usize> = component.iter().copied().collect();
    let mut parent: hashbrown::HashMap<usize, usize> = hashbrown::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for to in edges(node) {
            if to == start {
                let mut back = Vec::new();
                let mut at = node;
                while at != start {
                    back.push(at);
                    match parent.get(&at) {
                        Some(&p) => at = p,
                        None => break,
                    }
                }
                let mut path = vec![start];
                path.extend(back.into_iter().rev());
                path.push(start);
                return path;
            }
            if inside.contains(&to) && !parent.contains_key(&to) && to != start {
                parent.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    vec![start, start]
}

/// A cycle's names joined with arrows, at most 16 of them: a long cycle is shown by its
/// first and last eight, with how many were left out between.
pub(crate) fn describe_path(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= 2 * SHOWN {
        return names.join(" -> ");
    }
    format!(
        "{} -> ... ({} more) ... -> {}",
        names[..SHOWN].join(" -> "),
        names.len() - 2 * SHOWN,
        names[names.len() - SHOWN..].join(" -> ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first_and_finds_components() {
        let edges = [vec![1], vec![2], vec![], vec![3]];
        let comps = components(4, |n| edges[n].clone());
        assert_eq!(comps, [vec![2], vec![1], vec![0], vec![3]]);
        assert!(!is_cycle(&comps[0], |n| edges[n].clone()));
        assert!(is_cycle(&comps[3], |n| edges[n].clone()));
        assert_eq!(cycle_through_first(&comps[3], |n| edges[n].clone()), [3, 3]);
    }

    #[test]
    fn one_component_per_cycle_and_a_shortest_path() {
        // 0 -> 1 -> 2 -> 0, 1 -> 0 (two back edges, one component); 3 -> 4 -> 3.
        let edges = [vec![1], vec![2, 0], vec![0], vec![4], vec![3]];
        let comps = components(5, |n| edges[n].clone());
        let cyclic: Vec<_> = comps.iter().filter(|c| is_cycle(c, |n| edges[n].clone())).collect();
        assert_eq!(cyclic.len(), 2);
        assert_eq!(cycle_through_first(&[0, 1, 2], |n| edges[n].clone()), [0, 1, 0]);
        assert_eq!(cycle_through_first(&[1, 2, 0], |n| edges[n].clone()), [1, 0, 1]);
    }

    #[test]
    fn a_long_chain_does_not_exhaust_the_stack() {
        let n = 200_000;
        let comps = components(n, |i| if i + 1 < n { vec![i + 1] } else { vec![0] });
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].len(), n);
    }
}
