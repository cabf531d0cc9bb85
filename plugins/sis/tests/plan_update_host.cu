// Runs the kernels' scalar update (plan_update) on the host, for tests without a GPU.
// stdin:  K kind top_k temperature new_position new_score, then gram[(K+1)^2], positions[K],
//         scores[K], counts[K], valid[K]
// stdout: merged count, new slot, selected slots, weights, then positions, scores, counts, valid
#include <cstdio>

#include "../src/sis_synthesis.cu"

int main() {
    int capacity, kind, top_k;
    float temperature, new_position, new_score;
    if (std::scanf("%d %d %d %f %f %f", &capacity, &kind, &top_k, &temperature, &new_position, &new_score) != 6)
        return 2;
    if (capacity < 2 || capacity > SIS_MAX_CAPACITY) return 2;
    const int n = capacity + 1;
    float gram[(SIS_MAX_CAPACITY + 1) * (SIS_MAX_CAPACITY + 1)], positions[SIS_MAX_CAPACITY],
        scores[SIS_MAX_CAPACITY], counts[SIS_MAX_CAPACITY], weights[SIS_MAX_CAPACITY];
    int32_t valid[SIS_MAX_CAPACITY];
    int plan[SIS_MAX_CAPACITY + 2];
    for (int i = 0; i < n * n; ++i) std::scanf("%f", &gram[i]);
    for (float* field : {positions, scores, counts})
        for (int i = 0; i < capacity; ++i) std::scanf("%f", &field[i]);
    for (int i = 0; i < capacity; ++i) std::scanf("%d", &valid[i]);
    const sis_rule rule{kind, top_k, temperature};
    plan_update(gram, positions, scores, counts, valid, capacity, new_position, new_score, rule, weights, plan);
    std::printf("%d %d\n", plan[0], plan[1]);
    for (int c = 0; c < plan[0]; ++c) std::printf("%d %.9g\n", plan[2 + c], weights[c]);
    for (int i = 0; i < capacity; ++i)
        std::printf("%.9g %.9g %.9g %d\n", positions[i], scores[i], counts[i], static_cast<int>(valid[i]));
    return 0;
}
