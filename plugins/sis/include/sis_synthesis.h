/*
 * SIS memory synthesis on the GPU: the bank update of mixqsam2.memory.synthesis, in place.
 *
 * The bank of one tracked object lives on the device as K slots:
 *   features  [K, D]  float32 or float16 (D = HW * C memory tokens x channels, flattened)
 *   pointers  [K, P]  same dtype (object pointers)
 *   positions [K] float32, scores [K] float32, counts [K] float32, valid [K] uint8
 * and the newest memory as new_features [D], new_pointer [P], *new_position, *new_score
 * (device pointers too, so that a TensorRT plugin can take them as engine tensors).
 *
 * sis_update() enqueues the update on `stream` and never synchronizes: a free slot takes
 * the new memory; a full bank is synthesized exactly as the Python reference specifies
 * (cosine Gram matrix in float32, selection by rule, weighted merge into the oldest
 * selected slot, the other selected slots freed, the new memory into the first free slot).
 * `workspace` must hold sis_workspace_bytes(K) bytes of device memory.
 */
#ifndef MIXQSAM2_SIS_SYNTHESIS_H
#define MIXQSAM2_SIS_SYNTHESIS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define SIS_API __declspec(dllexport)
#else
#define SIS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SIS_FLOAT32 = 0, SIS_FLOAT16 = 1 } sis_dtype;

/* SIS_TOPK_TO_NEWEST: the paper (top_k most similar to the newest, softmax(sim / temperature));
 * SIS_CLOSEST_PAIR: ours (closest pair, weights counts * (sigmoid(score) + 1e-3)). */
typedef enum { SIS_TOPK_TO_NEWEST = 0, SIS_CLOSEST_PAIR = 1 } sis_rule_kind;

typedef struct {
    int kind;          /* sis_rule_kind */
    int top_k;         /* SIS_TOPK_TO_NEWEST only */
    float temperature; /* SIS_TOPK_TO_NEWEST only */
} sis_rule;

#define SIS_MAX_CAPACITY 64

/* Device workspace bytes sis_update needs for a bank of `capacity` slots. */
SIS_API size_t sis_workspace_bytes(int capacity);

/* Returns 0 on success, otherwise a cudaError_t value (or cudaErrorInvalidValue = 1 for bad
 * arguments: capacity outside [2, SIS_MAX_CAPACITY], non-positive sizes, unknown rule). */
SIS_API int sis_update(sis_dtype dtype, void* features, void* pointers, float* positions, float* scores,
                       float* counts, uint8_t* valid, int capacity, int feature_dim, int pointer_dim,
                       const void* new_features, const void* new_pointer, const float* new_position,
                       const float* new_score, sis_rule rule, void* workspace, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* MIXQSAM2_SIS_SYNTHESIS_H */
