// PEM-RT tests: runs the real kernels under the CPU emulation of CUDA, built with ThreadSanitizer, so a
// missing or misplaced __syncthreads() (a shared-memory race) is reported. Test code only.
#include "modulated_deform_conv/deform_conv_kernel.h"
#include "prototype_selection/prototype_selection_kernel.h"

#include <cstdio>
#include <random>
#include <vector>

extern "C" void pem_emulation_set_multiprocessors(int32_t count);

namespace
{

std::vector<float> random(size_t n, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::vector<float> v(n);
    for (float& x : v)
    {
        x = normal(rng);
    }
    return v;
}

int deformConv(std::mt19937& rng)
{
    // Cout 70 spans two 64-row tiles, 99 output pixels span two 64-pixel tiles, K = 4 * 9 spans 16-deep steps.
    PemDcnShape s{2, 8, 9, 11, 70, 3, 3, 9, 11, 1, 1, 1, 1, 1, 1, 2, 2};
    auto x = random(2 * 8 * 9 * 11, rng);
    auto offset = random(2 * 2 * 18 * 99, rng);
    auto mask = random(2 * 2 * 9 * 99, rng);
    auto weight = random(70 * 4 * 9, rng);
    auto bias = random(70, rng);
    std::vector<float> y(2 * 70 * 99);
    return pem_modulated_deform_conv2d(PEM_FLOAT32, &s, x.data(), offset.data(), mask.data(), weight.data(),
        bias.data(), y.data(), nullptr);
}

int prototypeSelection(std::mt19937& rng, int32_t multiprocessors)
{
    PemPsShape s{2, 300, 20, 32, 4};
    auto features = random(2 * 300 * 32, rng);
    auto queries = random(2 * 20 * 32, rng);
    auto logits = random(2 * 20 * 300, rng);
    std::vector<float> out(2 * 20 * 32);
    std::vector<int32_t> indices(2 * 4 * 20);
    std::vector<unsigned char> workspace(pem_prototype_selection_workspace_size(&s));
    pem_emulation_set_multiprocessors(multiprocessors);
    return pem_prototype_selection(PEM_FLOAT32, PEM_FLOAT32, &s, features.data(), queries.data(), logits.data(),
        out.data(), indices.data(), workspace.data(), workspace.size(), nullptr);
}

} // namespace

int main()
{
    std::mt19937 rng(0);
    int const dcn = deformConv(rng);
    int const ps1 = prototypeSelection(rng, 1);
    int const ps132 = prototypeSelection(rng, 132);
    std::printf("deform conv %d, prototype selection %d %d\n", dcn, ps1, ps132);
    return dcn == 0 && ps1 == 0 && ps132 == 0 ? 0 : 1;
}
